/**
 * gst-rtsp-server on the GLib main loop thread, with mount points whose
 * media elements are built by JS when a client asks for them.
 *
 * The media factory is a GType subclass of GstRTSPMediaFactory registered
 * from here; its create_element vfunc is a thread-safe JS callback (a rare
 * control call, once per shared media: docs/architecture.md, threading rule 5). The loop thread
 * waits while it runs, so the callback only builds elements and never waits.
 */
import { cstr, gtype, lib, type Pointer } from "./native.ts";
import { Layout, readPointer, RtspAuthScheme, u32Fields, writeSlot } from "./layout.ts";

/** Builds the media bin for a mount (a floating GstBin holding payloaders pay0, pay1, ...), or null when it cannot. */
export type MediaBuilder = () => Pointer | null;

/** The media factory role of every authenticated RTSP user (they all may do the same). */
const AUTH_ROLE = "user";

/** GST_RTSP_DESCRIBE (1 << 0) to GST_RTSP_POST (1 << 12). */
const ALL_RTSP_METHODS = 0x1fff;

/**
 * Makes `auth` ask for credentials on every request (OPTIONS, GET_PARAMETER, any path), not only
 * on those for a mounted media. GstRTSPAuth keeps the methods that need credentials whatever
 * they ask for in a private field with no setter, starting at 0, so by default only requests for
 * a mounted media (DESCRIBE, SETUP) need them: OPTIONS gets 200 and an unknown path 404. The
 * field's offset is proved at start-up (src/gst/layout.ts).
 */
function authenticateEveryRequest(auth: Pointer): void {
  lib().rtsp.gst_rtsp_auth_set_supported_methods(auth, RtspAuthScheme.BASIC);
  const priv = readPointer(auth, Layout.GstRTSPAuth.priv)!;
  u32Fields(priv, Layout.GstRTSPAuthPrivate.methods, 1)[0] = ALL_RTSP_METHODS;
}

/** Threads that RTSP clients are spread over. */
const CLIENT_THREADS = 16;

const builders = new Map<bigint, MediaBuilder>();
let factoryType: bigint | undefined;

/**
 * An empty media, for a request that cannot be served: the path was unmounted while the
 * request waited for this callback, or its stream cannot be described yet. The client gets an
 * RTSP error; returning NULL instead makes gst-rtsp-server log a CRITICAL ("could not create
 * element").
 */
function emptyMedia(): Pointer {
  return lib().gst.gst_bin_new(cstr("media-unavailable"))!; // floating, as the vfunc returns it
}

const createElement = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "pointer" } as const,
  (factory) => {
    try {
      const build = factory && builders.get(BigInt(Deno.UnsafePointer.value(factory)));
      return build?.() ?? emptyMedia();
    } catch (error) {
      console.error("Building an RTSP media failed:", error);
      return emptyMedia();
    }
  },
);
// The callback lives as long as the process (the class keeps its address); it must not keep the event loop alive.
createElement.unref();

const classInit = new Deno.UnsafeCallback(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (klass) =>
    writeSlot(klass!, Layout.GstRTSPMediaFactoryClass.createElement, createElement.pointer),
);

function mediaFactoryType(): bigint {
  if (factoryType !== undefined) return factoryType;
  const { rtsp, gobject } = lib();
  const parent = gtype(rtsp.gst_rtsp_media_factory_get_type());
  const query = new Uint8Array(Layout.GTypeQuery.size);
  gobject.g_type_query(parent, query);
  const sizes = new DataView(query.buffer);
  factoryType = gtype(gobject.g_type_register_static_simple(
    parent,
    cstr("GstControlMediaFactory"),
    sizes.getUint32(Layout.GTypeQuery.classSize, true),
    classInit.pointer,
    sizes.getUint32(Layout.GTypeQuery.instanceSize, true),
    null,
    0,
  ));
  if (factoryType === 0n) throw new Error("Registering the RTSP media factory type failed");
  return factoryType;
}

/** A gst-rtsp-server on `address`:`service`, attached to the default main context; null when it cannot listen. */
function listenOn(
  address: string,
  service: string,
  prepare: (server: Pointer) => void = () => {},
): Pointer | null {
  const { rtsp, gst } = lib();
  const server = rtsp.gst_rtsp_server_new()!;
  rtsp.gst_rtsp_server_set_address(server, cstr(address));
  rtsp.gst_rtsp_server_set_service(server, cstr(service));
  // Each client on a thread of its own: a DESCRIBE waiting for a stream's first data (a push
  // whose sender is slow to start) then holds up only that client, not the whole server.
  const threads = rtsp.gst_rtsp_server_get_thread_pool(server)!;
  rtsp.gst_rtsp_thread_pool_set_max_threads(threads, CLIENT_THREADS);
  gst.gst_object_unref(threads);
  prepare(server);
  if (rtsp.gst_rtsp_server_attach(server, null) === 0) {
    gst.gst_object_unref(server);
    return null;
  }
  return server;
}

export class RtspServer {
  /** One per address; the first made the mount points and the session pool the others share. */
  readonly #servers: Pointer[];
  readonly #mounts: Pointer;
  readonly #sessions: Pointer;
  readonly #loop: Pointer;
  readonly #loopDone: Promise<void>;
  #loopStarted = false;
  readonly #cleanupTimer: ReturnType<typeof setInterval>;
  readonly #factories = new Map<string, bigint>();
  /** Given to every factory mounted once basic auth is required; kept as long as the servers. */
  #permissions: Pointer | null = null;
  readonly port: number;

  /**
   * Listens on each address (IP addresses; 0 for `port` picks a free port, which the others then
   * share) and runs the GLib main loop on its own thread. One gst-rtsp-server per address, all
   * with the same mount points, sessions and auth: one server binds one address.
   */
  constructor(addresses: string[], port: number) {
    const { rtsp, glib } = lib();
    const [first, ...others] = addresses;
    const server = listenOn(first, String(port));
    if (server === null) throw new Error(`The RTSP server could not listen on ${first}:${port}`);
    this.#servers = [server];
    this.#mounts = rtsp.gst_rtsp_server_get_mount_points(server)!;
    this.#sessions = rtsp.gst_rtsp_server_get_session_pool(server)!;
    this.port = rtsp.gst_rtsp_server_get_bound_port(server);
    for (const address of others) {
      const other = listenOn(address, String(this.port), (made) => {
        rtsp.gst_rtsp_server_set_mount_points(made, this.#mounts);
        rtsp.gst_rtsp_server_set_session_pool(made, this.#sessions);
      });
      if (other === null) {
        // One address of several (::1 on a machine without IPv6) is not worth refusing to start.
        console.warn(`Not listening on RTSP address ${address}:${this.port}`);
      } else {
        this.#servers.push(other);
      }
    }
    this.#loop = glib.g_main_loop_new(null, 0)!;
    // Connections wait in the listen backlog until the loop runs. It starts after the code that
    // made the server has run to its end, so requireBasicAuth called right after construction is
    // in place before any client is accepted (each client keeps the auth it was accepted with).
    this.#loopDone = Promise.resolve().then(() => {
      this.#loopStarted = true;
      return glib.g_main_loop_run(this.#loop);
    });
    // Sessions of clients that vanished without TEARDOWN expire; the pool only drops them when asked.
    this.#cleanupTimer = setInterval(() => {
      void rtsp.gst_rtsp_session_pool_cleanup_async(this.#sessions);
    }, 5000);
  }

  /**
   * Requires HTTP basic auth from RTSP clients: only these user/password pairs are accepted, and
   * every request (any method, any path) is answered 401 with a `WWW-Authenticate: Basic`
   * challenge to anyone else. Call it once, right after construction, in the same synchronous run
   * (before any await), so that no client is accepted without it.
   */
  requireBasicAuth(credentials: { user: string; password: string }[]): void {
    if (this.#permissions !== null) throw new Error("RTSP basic auth is already required");
    if (this.#loopStarted || this.#factories.size > 0) {
      throw new Error(
        "RTSP basic auth must be required right after the server is made, before clients or paths",
      );
    }
    if (credentials.length === 0) throw new Error("RTSP basic auth needs at least one user");
    for (const { user } of credentials) {
      // RFC 7617: the user-id cannot contain a colon; "a:b" + "c" would also match "a" + "b:c".
      if (user === "" || user.includes(":")) {
        throw new Error(`RTSP user name ${JSON.stringify(user)} must be non-empty, without ':'`);
      }
    }
    const { rtsp, gobject, glib } = lib();
    const permissions = rtsp.gst_rtsp_permissions_new()!;
    rtsp.gst_rtsp_permissions_add_role_empty(permissions, cstr(AUTH_ROLE));
    for (const permission of ["media.factory.access", "media.factory.construct"]) {
      rtsp.gst_rtsp_permissions_add_permission_for_role(
        permissions,
        cstr(AUTH_ROLE),
        cstr(permission),
        1,
      );
    }
    const token = rtsp.gst_rtsp_token_new_empty()!;
    rtsp.gst_rtsp_token_set_string(token, cstr("media.factory.role"), cstr(AUTH_ROLE));
    const auth = rtsp.gst_rtsp_auth_new()!;
    for (const { user, password } of credentials) {
      const basic = rtsp.gst_rtsp_auth_make_basic(cstr(user), cstr(password));
      rtsp.gst_rtsp_auth_add_basic(auth, basic, token);
      glib.g_free(basic);
    }
    lib().gst.gst_mini_object_unref(token);
    authenticateEveryRequest(auth);
    // Clients accepted from here on (all of them: the loop has not run yet) check every request.
    for (const server of this.#servers) rtsp.gst_rtsp_server_set_auth(server, auth);
    gobject.g_object_unref(auth);
    this.#permissions = permissions;
  }

  /** Open RTSP sessions per mounted path. */
  sessionsByPath(): Map<string, number> {
    const { rtsp, gobject, glib } = lib();
    const counts = new Map<string, number>();
    const list = rtsp.gst_rtsp_session_pool_filter(this.#sessions, null, null);
    const matched = new Int32Array(1);
    for (let node = list; node !== null; node = readPointer(node, Layout.GList.next)) {
      const session = readPointer(node, Layout.GList.data)!;
      for (const path of this.#factories.keys()) {
        const media = rtsp.gst_rtsp_session_get_media(session, cstr(`/${path}`), matched);
        if (media !== null && matched[0] === path.length + 1) {
          counts.set(path, (counts.get(path) ?? 0) + 1);
        }
      }
      gobject.g_object_unref(session);
    }
    if (list !== null) glib.g_list_free(list);
    return counts;
  }

  isMounted(path: string): boolean {
    return this.#factories.has(path);
  }

  /** Serves `build`'s media at rtsp://host:port/{path}, shared by every client. */
  mount(path: string, build: MediaBuilder): void {
    const { rtsp, gobject } = lib();
    if (this.#factories.has(path)) throw new Error(`RTSP path '${path}' is already mounted`);
    const factory = gobject.g_object_new_with_properties(mediaFactoryType(), 0, null, null)!;
    rtsp.gst_rtsp_media_factory_set_shared(factory, 1);
    // Without permissions for the token's role, GstRTSPAuth refuses the factory to everyone.
    if (this.#permissions !== null) {
      rtsp.gst_rtsp_media_factory_set_permissions(factory, this.#permissions);
    }
    const key = BigInt(Deno.UnsafePointer.value(factory));
    builders.set(key, build);
    this.#factories.set(path, key);
    rtsp.gst_rtsp_mount_points_add_factory(this.#mounts, cstr(`/${path}`), factory);
  }

  unmount(path: string): void {
    const key = this.#factories.get(path);
    if (key === undefined) return;
    this.#factories.delete(path);
    builders.delete(key);
    lib().rtsp.gst_rtsp_mount_points_remove_factory(this.#mounts, cstr(`/${path}`));
  }

  /** Stops the GLib loop thread. */
  async stop(): Promise<void> {
    clearInterval(this.#cleanupTimer);
    for (const path of [...this.#factories.keys()]) this.unmount(path);
    lib().glib.g_main_loop_quit(this.#loop);
    await this.#loopDone;
  }
}
