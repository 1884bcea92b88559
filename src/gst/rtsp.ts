/**
 * gst-rtsp-server on the GLib main loop thread, with mount points whose
 * media elements are built by JS when a client asks for them.
 *
 * The media factory is a GType subclass of GstRTSPMediaFactory registered
 * from here; its create_element vfunc is a thread-safe JS callback (a rare
 * control call, once per shared media: docs/architecture.md, threading rule 5). The loop thread
 * waits while it runs, so the callback only builds elements and never waits.
 *
 * Publishing (ANNOUNCE/RECORD) goes through the auth: a GstRTSPAuth subclass whose check vfunc
 * is another such callback. gst-rtsp-server looks for the media of an ANNOUNCE before anything
 * else can see the request, so the auth's URL check, which comes first, is where a publish is
 * accepted (a record factory is mounted at its path) or refused with a status of our own.
 */
import {
  cFunctions,
  cstr,
  gtype,
  lib,
  type Pointer,
  pointerSlot,
  readCString,
  slotPointer,
  takeCString,
} from "./native.ts";
import {
  instanceType,
  Layout,
  readPointer,
  readU64,
  RtspAuthScheme,
  u32Fields,
  writeSlot,
} from "./layout.ts";
import { resolvesWithin } from "./resolves_within.ts";
import { parseSdpText } from "./sdp_text.ts";

/**
 * Builds the media bin for a mount (a floating GstBin holding payloaders pay0, pay1, ... or, for
 * a publish, depay0, depay1, ... taking the publisher's RTP), or null when it cannot. `uri` is the
 * request's, with its query (`rtsp://host:8554/recordings/cam?from=...`).
 */
export type MediaBuilder = (uri: string) => Pointer | null;

/** Media factory roles: readers may read; publishers may read and publish. */
const READ_ROLE = "user";
const PUBLISH_ROLE = "publisher";

/** GST_RTSP_TRANSPORT_MODE_RECORD. */
const TRANSPORT_MODE_RECORD = 2;
/** GST_RTSP_DESCRIBE, GST_RTSP_ANNOUNCE and GST_RTSP_PLAY, in GstRTSPMethod. */
const METHOD_DESCRIBE = 1 << 0;
const METHOD_ANNOUNCE = 1 << 1;
const METHOD_PLAY = 1 << 5;
/** Linux's TCP_USER_TIMEOUT (netinet/tcp.h), an option of level IPPROTO_TCP. */
const IPPROTO_TCP = 6;
const TCP_USER_TIMEOUT = 18;
const GST_RTSP_MESSAGE_REQUEST = 1;

/** One stream of a publisher's SDP: its media ("video", "audio"), encoding and RTP caps. */
export interface SdpStream {
  media: string;
  /** The encoding name of the rtpmap, upper case ("H264", "MPEG4-GENERIC", "OPUS"). */
  encoding: string;
  /** application/x-rtp caps as depayloaders take them (with sprop-parameter-sets, config...). */
  caps: string;
}

/** A publisher's ANNOUNCE, as far as the server can say yes or no to it. */
export interface AnnounceRequest {
  /** The path without its leading '/', percent-decoded. */
  path: string;
  streams: SdpStream[];
  /** The publisher's IP address. */
  from: string;
}

/** Yes (with the builder of the record media's bin), or a refusal with its RTSP status. */
export type AnnounceAnswer =
  | { record: MediaBuilder }
  | { status: number; reason: string };

export type AnnounceHandler = (request: AnnounceRequest) => AnnounceAnswer;

/** Why a DESCRIBE of a per-client mount is refused (its RTSP status and reason), or null. */
export type DescribeCheck = (uri: string) => { status: number; reason: string } | null;

/**
 * The streams of an SDP (an ANNOUNCE body), with caps made by GStreamer's own SDP code (what
 * gst-rtsp-server gives its depayloaders); null when it is not SDP or a stream's first format
 * has no rtpmap.
 */
export function sdpStreams(text: string): SdpStream[] | null {
  const { sdp, gst } = lib();
  const message = parseSdpText(text);
  if (message === null) return null;
  try {
    const streams: SdpStream[] = [];
    const count = sdp.gst_sdp_message_medias_len(message);
    for (let index = 0; index < count; index++) {
      const media = sdp.gst_sdp_message_get_media(message, index)!;
      const kind = readCString(sdp.gst_sdp_media_get_media(media)) ?? "";
      const format = sdp.gst_sdp_media_formats_len(media) > 0
        ? Number(readCString(sdp.gst_sdp_media_get_format(media, 0)))
        : NaN;
      if (!Number.isInteger(format)) return null;
      const caps = sdp.gst_sdp_media_get_caps_from_media(media, format);
      if (caps === null) return null;
      const text = takeCString(gst.gst_caps_to_string(caps)) ?? "";
      gst.gst_caps_unref(caps);
      const encoding = /encoding-name=\(string\)([^,;]+)/.exec(text)?.[1].toUpperCase() ?? "";
      streams.push({
        media: kind,
        encoding,
        caps: text.replace(/^application\/x-unknown/, "application/x-rtp"),
      });
    }
    return streams;
  } finally {
    sdp.gst_sdp_message_free(message);
  }
}

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

/**
 * Connections that may wait to be accepted. gst-rtsp-server's default is 5, and every accept
 * waits for the JS thread (the auth's connect check): 50 clients connecting at once under load
 * overflowed it, and the kernel dropped their handshakes until a connection was reset. The
 * kernel caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 1024;

/** Threads that RTSP clients are spread over. */
const CLIENT_THREADS = 16;

const builders = new Map<bigint, MediaBuilder>();
let factoryType: bigint | undefined;
/**
 * Each server's auth -> what that server does with a new connection, and says to a request, once
 * the default check passed.
 */
const requestCheckers = new Map<
  bigint,
  { connected: (context: Pointer) => void; request: (context: Pointer) => boolean }
>();
let authType: bigint | undefined;

/**
 * An empty media, for a request that cannot be served: the path was unmounted while the
 * request waited for this callback, or its stream cannot be described yet. Returning NULL
 * instead makes gst-rtsp-server log a CRITICAL ("could not create element"). A shared factory
 * answers a DESCRIBE of it with an SDP without streams, and caches it while a client holds it: a
 * mount's DescribeCheck refuses what it can tell before (a stream not started yet).
 */
function emptyMedia(): Pointer {
  return lib().gst.gst_bin_new(cstr("media-unavailable"))!; // floating, as the vfunc returns it
}

const createElement = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "pointer" } as const,
  (factory, url) => {
    try {
      const build = factory && builders.get(BigInt(Deno.UnsafePointer.value(factory)));
      const uri = url === null
        ? ""
        : takeCString(lib().rtspMessage.gst_rtsp_url_get_request_uri(url)) ?? "";
      return build?.(uri) ?? emptyMedia();
    } catch (error) {
      console.error("Building an RTSP media failed:", error);
      return emptyMedia();
    }
  },
);
// The callback lives as long as the process (the class keeps its address); it must not keep the event loop alive.
createElement.unref();

/** Each shared factory's key -> what its server does with a media of it once prepared. */
const preparedHandlers = new Map<bigint, (media: Pointer) => void>();

/** A media's "prepared", with its factory: on a client thread, once the media prerolled. */
const mediaPrepared = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (media, factory) => {
    if (media === null || factory === null) return;
    preparedHandlers.get(BigInt(Deno.UnsafePointer.value(factory)))?.(media);
  },
);
mediaPrepared.unref();

/** The factory's "media-constructed": on a client thread, under the factory's lock. */
const mediaConstructed = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer", "pointer"], result: "void" } as const,
  (factory, media) => {
    if (factory === null || media === null) return;
    lib().gobject.g_signal_connect_data(
      media,
      cstr("prepared"),
      mediaPrepared.pointer,
      factory,
      null,
      0,
    );
  },
);
mediaConstructed.unref();

/** How long stop() waits for the medias let go to go down. */
const LET_GO_TIMEOUT_MS = 5000;

/** A shared media kept prepared by us: one more user of it (gst_rtsp_media_prepare). */
interface HeldMedia {
  /** With a reference of ours. */
  media: Pointer;
  /** When tendMedias last found a reader of it. */
  lastReadAt: number;
  /** Whether our prepare counted (the media was still prepared when it ran). */
  counted: Promise<boolean>;
}

const classInit = new Deno.UnsafeCallback(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (klass) =>
    writeSlot(klass!, Layout.GstRTSPMediaFactoryClass.createElement, createElement.pointer),
);

type AuthCheck = (auth: Pointer, context: Pointer, check: Pointer) => number;
let parentCheck: AuthCheck | undefined;

/** GstRTSPAuth's own check: authentication, the factory permissions, the transport settings. */
function defaultCheck(): AuthCheck {
  if (parentCheck) return parentCheck;
  const { rtsp, gobject } = lib();
  const parentClass = gobject.g_type_class_ref(gtype(rtsp.gst_rtsp_auth_get_type()))!;
  const signature = { parameters: ["pointer", "pointer", "pointer"], result: "i32" } as const;
  const slot = readPointer(parentClass, Layout.GstRTSPAuthClass.check)!;
  const check = new Deno.UnsafeFnPointer(slot as Deno.PointerObject<typeof signature>, signature);
  // The class reference is kept: the function it points at lives as long as the library.
  parentCheck = (auth, context, name) => check.call(auth, context, name);
  return parentCheck;
}

const URL_CHECK = "auth.check.url";
const CONNECT_CHECK = "auth.check.connect";

const authCheck = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer", "pointer"], result: "i32" } as const,
  (auth, context, check) => {
    try {
      if (defaultCheck()(auth!, context!, check!) === 0) return 0;
      const name = readCString(check);
      const checker = requestCheckers.get(BigInt(Deno.UnsafePointer.value(auth)));
      if (name === CONNECT_CHECK) checker?.connected(context!);
      if (name !== URL_CHECK) return 1;
      return checker === undefined || checker.request(context!) ? 1 : 0;
    } catch (error) {
      console.error("Checking an RTSP request failed:", error);
      return 0;
    }
  },
);
authCheck.unref();

const authClassInit = new Deno.UnsafeCallback(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (klass) => writeSlot(klass!, Layout.GstRTSPAuthClass.check, authCheck.pointer),
);

/** Registers a GType subclass of `parent` whose class_init is `classInit`. */
function registerSubclass(parent: bigint, name: string, classInit: Pointer): bigint {
  const { gobject } = lib();
  const query = new Uint8Array(Layout.GTypeQuery.size);
  gobject.g_type_query(parent, query);
  const sizes = new DataView(query.buffer);
  const type = gtype(gobject.g_type_register_static_simple(
    parent,
    cstr(name),
    sizes.getUint32(Layout.GTypeQuery.classSize, true),
    classInit,
    sizes.getUint32(Layout.GTypeQuery.instanceSize, true),
    null,
    0,
  ));
  if (type === 0n) throw new Error(`Registering the ${name} type failed`);
  return type;
}

function controlAuthType(): bigint {
  authType ??= registerSubclass(
    gtype(lib().rtsp.gst_rtsp_auth_get_type()),
    "GstControlAuth",
    authClassInit.pointer,
  );
  return authType;
}

/** Whether `instance` is a `type` (or of a subclass): how fields read beside a proved one are checked. */
function isInstanceOf(instance: Deno.PointerValue, type: number | bigint): boolean {
  return instance !== null && lib().gobject.g_type_is_a(instanceType(instance), gtype(type)) !== 0;
}

/** The request a context is handling: its method, URI and client; null if it is not one. */
function contextRequest(
  context: Pointer,
): { message: Pointer; method: number; uri: string; client: Pointer } | null {
  const { rtspMessage, rtsp } = lib();
  const message = readPointer(context, Layout.GstRTSPContext.request);
  const client = readPointer(context, Layout.GstRTSPContext.client);
  if (message === null || !isInstanceOf(client, rtsp.gst_rtsp_client_get_type())) return null;
  if (rtspMessage.gst_rtsp_message_get_type(message) !== GST_RTSP_MESSAGE_REQUEST) return null;
  const method = new Int32Array(1);
  const uri = pointerSlot();
  const version = new Int32Array(1);
  if (rtspMessage.gst_rtsp_message_parse_request(message, method, uri, version) !== 0) return null;
  return { message, method: method[0], uri: readCString(slotPointer(uri)) ?? "", client: client! };
}

/** The media factory role of the context's token (set once the request is authenticated). */
function contextRole(context: Pointer): string | null {
  const { rtsp } = lib();
  const token = readPointer(context, Layout.GstRTSPContext.token);
  if (token === null) return null;
  if (readU64(token, Layout.GstMiniObject.type) !== BigInt(rtsp.gst_rtsp_token_get_type())) {
    return null;
  }
  return readCString(rtsp.gst_rtsp_token_get_string(token, cstr("media.factory.role")));
}

/** The body of a request, as text. */
function requestBody(message: Pointer): string {
  const data = pointerSlot();
  const size = new Uint32Array(1);
  lib().rtspMessage.gst_rtsp_message_get_body(message, data, size);
  const body = slotPointer(data);
  if (body === null || size[0] === 0) return "";
  const text = new TextDecoder().decode(Deno.UnsafePointerView.getArrayBuffer(body, size[0]));
  // GstRTSPConnection ends a body it read with a NUL of its own, counted in its size.
  return text.endsWith("\0") ? text.slice(0, -1) : text;
}

/** A header of a request (the first of that name), or null when it has none. */
function requestHeader(message: Pointer, name: string): string | null {
  const value = pointerSlot();
  const result = lib().rtspMessage.gst_rtsp_message_get_header_by_name(
    message,
    cstr(name),
    value,
    0,
  );
  return result === 0 ? readCString(slotPointer(value)) : null;
}

/** The path of an RTSP URI without its slashes at either end, undecoded; null when it has none. */
function requestPath(uri: string): string | null {
  const path = /^rtsp[su]?:\/\/[^/?#]*(\/[^?#]*)?/i.exec(uri)?.[1];
  return path === undefined ? null : path.replace(/^\/+|\/+$/g, "");
}

/** Answers a request with `status` and `reason` (a reason of our own: clients print it). */
function respond(client: Pointer, request: Pointer, status: number, reason: string): void {
  const { rtspMessage, rtsp } = lib();
  const slot = pointerSlot();
  const phrase = reason.replace(/[\r\n]+/g, " ");
  if (rtspMessage.gst_rtsp_message_new_response(slot, status, cstr(phrase), request) !== 0) return;
  const response = slotPointer(slot)!;
  rtsp.gst_rtsp_client_send_message(client, null, response);
  rtspMessage.gst_rtsp_message_free(response);
}

function mediaFactoryType(): bigint {
  factoryType ??= registerSubclass(
    gtype(lib().rtsp.gst_rtsp_media_factory_get_type()),
    "GstControlMediaFactory",
    classInit.pointer,
  );
  return factoryType;
}

/** Permissions granting each role its media factory permissions. */
function factoryPermissions(roles: Record<string, string[]>): Pointer {
  const { rtsp } = lib();
  const permissions = rtsp.gst_rtsp_permissions_new()!;
  for (const [role, granted] of Object.entries(roles)) {
    rtsp.gst_rtsp_permissions_add_role_empty(permissions, cstr(role));
    for (const permission of granted) {
      rtsp.gst_rtsp_permissions_add_permission_for_role(
        permissions,
        cstr(role),
        cstr(permission),
        1,
      );
    }
  }
  return permissions;
}

/** A token with the media factory role `role`. */
function roleToken(role: string): Pointer {
  const { rtsp } = lib();
  const token = rtsp.gst_rtsp_token_new_empty()!;
  rtsp.gst_rtsp_token_set_string(token, cstr("media.factory.role"), cstr(role));
  return token;
}

/** A publish's record factory, from its ANNOUNCE to the end of the publish. */
interface RecordMount {
  /**
   * The factory, with a reference of ours: once the play factory replaces it on its path, the
   * mount points drop theirs, and its address, still a key in `builders`, could be another
   * factory's before unmountRecord deletes that key.
   */
  factory: Pointer;
  /** The factory's address, its key in `builders`. */
  key: bigint;
  /** Its record media has been made (the ANNOUNCE found the factory). */
  made: boolean;
  /** It is the factory at its path (not yet replaced by the path's play factory). */
  mounted: boolean;
  /** The path's play factory, mounted in its place once the record media is made. */
  waitingPlay?: MediaBuilder;
  /** The publisher's client (the one whose ANNOUNCE made it), with a reference of ours. */
  publisher: Pointer;
  /** The socket its requests come in on, with a reference of ours; null if it had none. */
  publisherSocket: Pointer | null;
}

/**
 * Drops the reference each item of `list` holds, and the list, on a pool thread. A client may
 * have torn a session down meanwhile, and then ours is the last reference: finalizing a session
 * media sets its media to NULL and takes its factory's lock, which a client thread can hold while
 * it waits for the main thread (in create_element).
 */
function releaseOffThread(list: Pointer): void {
  void lib().glib.g_list_free_full_async(list, cFunctions().gObjectUnref);
}

/** Drops a reference of ours to `object` on a pool thread, as releaseOffThread does. */
function unrefOffThread(object: Pointer): void {
  releaseOffThread(lib().glib.g_list_append(null, object)!);
}

/**
 * Has the kernel cut `connection` off once what was written to it has stayed unsent (the reader
 * stopped reading: its window is zero) or unacknowledged (the peer is gone) for `timeoutMs`;
 * gst-rtsp-server then closes its client. A reader over TCP that stops reading holds up the
 * sending of its shared media to every reader of the path (gst-rtsp-server's TCP back pressure
 * waits for it), and it would never be let go. Set on a connection just accepted, which no
 * client thread has yet, so nothing can close it meanwhile.
 */
function limitUnsentTime(connection: Pointer, timeoutMs: number): void {
  if (Deno.build.os !== "linux") return;
  const { rtspMessage, gio } = lib();
  const socket = rtspMessage.gst_rtsp_connection_get_write_socket(connection);
  if (socket === null) return;
  if (gio.g_socket_set_option(socket, IPPROTO_TCP, TCP_USER_TIMEOUT, timeoutMs, null) === 0) {
    console.warn("RTSP: the write timeout could not be set on a new connection");
  }
}

/** Whether a session's media is a publisher's record media. */
function isRecording(sessionMedia: Pointer): boolean {
  const { rtsp } = lib();
  const media = rtsp.gst_rtsp_session_media_get_media(sessionMedia);
  return media !== null &&
    (rtsp.gst_rtsp_media_get_transport_mode(media) & TRANSPORT_MODE_RECORD) !== 0;
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
  rtsp.gst_rtsp_server_set_backlog(server, LISTEN_BACKLOG);
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

export interface RtspServerOptions {
  /**
   * A connection that has taken nothing for this long (what was sent to it stays unsent or
   * unacknowledged: a reader that stopped reading, a peer that is gone) is cut off; 0 leaves it
   * to the system (Linux only). Every RTSP connection, a publisher's too, has it.
   */
  writeTimeoutMs?: number;
  /**
   * How long a shared media stays prepared once its last reader left (RtspServer.#hold); 0 lets
   * it go down at once, as gst-rtsp-server does.
   */
  lingerMs?: number;
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
  /** Shared medias kept prepared, by path (see #hold). */
  readonly #held = new Map<string, HeldMedia>();
  /** Held medias let go whose unprepare has not returned. */
  readonly #lettingGo = new Set<Promise<void>>();
  /** A round of tendMedias' wakes whose calls have not all returned. */
  #waking = false;
  readonly #factories = new Map<string, bigint>();
  /** Record factories of publishes under way, by path. */
  readonly #records = new Map<string, RecordMount>();
  /** Who may do what on a factory: readers read; publishers read, and publish to record factories. */
  readonly #permissions: Pointer;
  readonly #recordPermissions: Pointer;
  /** The auth every server checks each request with (a GstControlAuth); kept as long as they are. */
  readonly #auth: Pointer;
  #authRequired = false;
  #announce: AnnounceHandler | null = null;
  #onPlay: ((path: string) => void) | null = null;
  /** Per-client mounts' checks of a DESCRIBE, by path. */
  readonly #describeChecks = new Map<string, DescribeCheck>();
  readonly port: number;
  readonly #writeTimeoutMs: number;
  readonly #lingerMs: number;
  /** Set by stop(): no media is held from then on. */
  #stopping = false;

  /**
   * Listens on each address (IP addresses; 0 for `port` picks a free port, which the others then
   * share) and runs the GLib main loop on its own thread. One gst-rtsp-server per address, all
   * with the same mount points, sessions and auth: one server binds one address.
   */
  constructor(addresses: string[], port: number, options: RtspServerOptions = {}) {
    const { rtsp, glib, gobject, gst } = lib();
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 0;
    this.#lingerMs = options.lingerMs ?? 0;
    this.#permissions = factoryPermissions({
      [READ_ROLE]: ["media.factory.access", "media.factory.construct"],
      [PUBLISH_ROLE]: ["media.factory.access", "media.factory.construct"],
    });
    this.#recordPermissions = factoryPermissions({
      [PUBLISH_ROLE]: ["media.factory.access", "media.factory.construct"],
    });
    this.#auth = gobject.g_object_new_with_properties(controlAuthType(), 0, null, null)!;
    // Until basic auth is required, a client without credentials may read and publish.
    const anyone = roleToken(PUBLISH_ROLE);
    rtsp.gst_rtsp_auth_set_default_token(this.#auth, anyone);
    gst.gst_mini_object_unref(anyone);
    requestCheckers.set(BigInt(Deno.UnsafePointer.value(this.#auth)), {
      connected: (context) => this.#connected(context),
      request: (context) => this.#checkRequest(context),
    });
    const [first, ...others] = addresses;
    const server = listenOn(first, String(port), (made) => {
      rtsp.gst_rtsp_server_set_auth(made, this.#auth);
    });
    if (server === null) throw new Error(`The RTSP server could not listen on ${first}:${port}`);
    this.#servers = [server];
    this.#mounts = rtsp.gst_rtsp_server_get_mount_points(server)!;
    this.#sessions = rtsp.gst_rtsp_server_get_session_pool(server)!;
    this.port = rtsp.gst_rtsp_server_get_bound_port(server);
    for (const address of others) {
      const other = listenOn(address, String(this.port), (made) => {
        rtsp.gst_rtsp_server_set_mount_points(made, this.#mounts);
        rtsp.gst_rtsp_server_set_session_pool(made, this.#sessions);
        rtsp.gst_rtsp_server_set_auth(made, this.#auth);
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
  requireBasicAuth(
    readers: { user: string; password: string }[],
    publishers: { user: string; password: string }[] = [],
  ): void {
    if (this.#authRequired) throw new Error("RTSP basic auth is already required");
    if (this.#loopStarted || this.#factories.size > 0 || this.#records.size > 0) {
      throw new Error(
        "RTSP basic auth must be required right after the server is made, before clients or paths",
      );
    }
    if (readers.length + publishers.length === 0) {
      throw new Error("RTSP basic auth needs at least one user");
    }
    for (const { user } of [...readers, ...publishers]) {
      // RFC 7617: the user-id cannot contain a colon; "a:b" + "c" would also match "a" + "b:c".
      if (user === "" || user.includes(":")) {
        throw new Error(`RTSP user name ${JSON.stringify(user)} must be non-empty, without ':'`);
      }
    }
    const { rtsp, glib, gst } = lib();
    for (const [role, credentials] of [[READ_ROLE, readers], [PUBLISH_ROLE, publishers]] as const) {
      const token = roleToken(role);
      for (const { user, password } of credentials) {
        const basic = rtsp.gst_rtsp_auth_make_basic(cstr(user), cstr(password));
        rtsp.gst_rtsp_auth_add_basic(this.#auth, basic, token);
        glib.g_free(basic);
      }
      gst.gst_mini_object_unref(token);
    }
    // Clients without credentials get no token, so no access: a 401 with the challenge.
    rtsp.gst_rtsp_auth_set_default_token(this.#auth, null);
    authenticateEveryRequest(this.#auth);
    this.#authRequired = true;
  }

  /** Decides ANNOUNCE requests (publishing); without a handler they are refused. */
  onAnnounce(handler: AnnounceHandler): void {
    this.#announce = handler;
  }

  /**
   * Tells `handler` the path of each PLAY request, before gst-rtsp-server handles it (on the main
   * thread, while the GLib loop thread waits: the handler must not wait on GStreamer).
   */
  onPlay(handler: (path: string) => void): void {
    this.#onPlay = handler;
  }

  /**
   * What this server says to a request after GstRTSPAuth's own URL check passed: every request
   * but ANNOUNCE goes on; an ANNOUNCE is answered here when refused, or gets its record factory.
   */
  #checkRequest(context: Pointer): boolean {
    const request = contextRequest(context);
    if (request === null) {
      console.error("An RTSP request could not be read from its context; refused");
      return false;
    }
    if (request.method === METHOD_DESCRIBE && this.#describeChecks.size > 0) {
      return this.#checkDescribe(request);
    }
    if (request.method === METHOD_PLAY) {
      // A PLAY of one stream names it by its control ("stream=0"), after the path.
      const path = requestPath(request.uri)?.replace(/\/?stream=\d+$/, "");
      try {
        if (path) this.#onPlay?.(path);
      } catch (error) {
        console.error(`After the PLAY of ${request.uri}:`, error); // the PLAY goes on
      }
      return true;
    }
    if (request.method !== METHOD_ANNOUNCE) return true;
    const refuse = (status: number, reason: string) => {
      console.warn(`RTSP publish to ${request.uri} refused: ${status} ${reason}`);
      respond(request.client, request.message, status, reason);
      return false;
    };
    if (this.#authRequired && contextRole(context) !== PUBLISH_ROLE) {
      return refuse(
        403,
        "Forbidden: these credentials may read but not publish; publish as " +
          "GSTREAMER_RTSP_PUBLISH_USER, or as user 'token' with the API token",
      );
    }
    // What gst-rtsp-server checks after this one, checked first: a publish accepted here and then
    // refused there would hold its name until it timed out.
    const contentType = requestHeader(request.message, "Content-Type");
    if (contentType !== null && contentType.toLowerCase() !== "application/sdp") {
      return refuse(
        400,
        `Bad Request: the ANNOUNCE body is ${contentType}; send it as application/sdp`,
      );
    }
    // The path as gst-rtsp-server finds its mount: not percent-decoded (names need no escapes).
    const path = requestPath(request.uri);
    if (path === null) return refuse(400, `Bad Request: cannot read the path of ${request.uri}`);
    const streams = sdpStreams(requestBody(request.message));
    if (streams === null || streams.length === 0) {
      return refuse(400, "Bad Request: the ANNOUNCE body is not an SDP with at least one stream");
    }
    const connection = lib().rtsp.gst_rtsp_client_get_connection(request.client);
    const from = connection === null
      ? "?"
      : readCString(lib().rtspMessage.gst_rtsp_connection_get_ip(connection)) ?? "?";
    const answer = this.#announce?.({ path, streams, from }) ??
      { status: 405, reason: "Method Not Allowed: this server takes no publishers" };
    if ("status" in answer) return refuse(answer.status, answer.reason);
    this.#mountRecord(path, answer.record, request.client);
    return true;
  }

  /** A connection just accepted (the GLib loop thread waits): its write timeout. */
  #connected(context: Pointer): void {
    const connection = readPointer(context, Layout.GstRTSPContext.conn);
    if (connection !== null && this.#writeTimeoutMs > 0) {
      limitUnsentTime(connection, this.#writeTimeoutMs);
    }
  }

  /** A DESCRIBE of a mount whose check refuses it is answered here, with the reason. */
  #checkDescribe(request: NonNullable<ReturnType<typeof contextRequest>>): boolean {
    // The path as gst-rtsp-server finds its mount (undecoded); it answers what it cannot find.
    const path = requestPath(request.uri);
    if (path === null) return true;
    const refusal = this.#describeChecks.get(path)?.(request.uri) ?? null;
    if (refusal === null) return true;
    respond(request.client, request.message, refusal.status, refusal.reason);
    return false;
  }

  /** Open RTSP sessions per mounted path: its readers (publishers are not counted). */
  sessionsByPath(): Map<string, number> {
    const { rtsp } = lib();
    const counts = new Map<string, number>();
    const matched = new Int32Array(1);
    const held = this.#walkReaders((medias) => {
      const paths = new Set<string>();
      for (const media of medias) {
        for (const path of this.#factories.keys()) {
          const exact = rtsp.gst_rtsp_session_media_matches(media, cstr(`/${path}`), matched) !==
              0 && matched[0] === path.length + 1;
          if (exact) paths.add(path);
        }
      }
      for (const path of paths) counts.set(path, (counts.get(path) ?? 0) + 1);
    });
    if (held !== null) releaseOffThread(held);
    return counts;
  }

  /**
   * Calls `visit` with each session's session medias that read (a publisher's record media is
   * left out). Every session and session media has a reference of ours, held by the list this
   * returns, which the caller releases (releaseOffThread) once done with them: a client thread
   * may remove them meanwhile (gst_rtsp_session_get_media's pointer, without one, was freed
   * under us).
   */
  #walkReaders(visit: (sessionMedias: Pointer[]) => void): Pointer | null {
    const { rtsp, glib } = lib();
    const sessions = rtsp.gst_rtsp_session_pool_filter(this.#sessions, null, null);
    let held = sessions;
    for (let node = sessions; node !== null; node = readPointer(node, Layout.GList.next)) {
      const session = readPointer(node, Layout.GList.data)!;
      const medias = rtsp.gst_rtsp_session_filter(session, null, null);
      const readers: Pointer[] = [];
      for (let item = medias; item !== null; item = readPointer(item, Layout.GList.next)) {
        const media = readPointer(item, Layout.GList.data)!;
        if (!isRecording(media)) readers.push(media);
      }
      // In front: the sessions' nodes keep their next pointers, which this loop follows.
      if (medias !== null) held = glib.g_list_concat(medias, held);
      visit(readers);
    }
    return held;
  }

  /**
   * Called by the mounts about once a second while paths are served: lets go of the shared
   * medias unread for the linger time (#hold), and wakes the sending of every media read.
   *
   * The wake: gst-rtsp-server sends a
   * stream to its TCP readers from a thread that sleeps while every one of them is behind, and
   * only new data or a message sent wakes it; new data waits behind the data it holds, and so do
   * the media's UDP readers. Once the readers that were behind are cut off (their transports
   * removed), nothing would wake it, and the media's other readers would get nothing until it
   * went down. A message reported sent on one of the stream's transports wakes it, and sends the
   * next of that transport's backlog, as a real one does. A session whose reader was cut off
   * stays in the pool (empty) until it times out, so no count tells when: every round wakes every
   * stream read. A round of wakes starts only once the last one is done.
   */
  tendMedias(): void {
    const { rtsp } = lib();
    const read = new Set<bigint>();
    const streams: Pointer[] = [];
    const sessionRefs = rtsp.gst_rtsp_session_pool_get_n_sessions(this.#sessions) === 0
      ? null
      : this.#walkReaders((sessionMedias) => {
        for (const sessionMedia of sessionMedias) {
          // The session media's reference keeps its media, and so its streams, alive.
          const media = rtsp.gst_rtsp_session_media_get_media(sessionMedia);
          if (media === null || read.has(BigInt(Deno.UnsafePointer.value(media)))) continue;
          read.add(BigInt(Deno.UnsafePointer.value(media)));
          for (let i = 0; i < rtsp.gst_rtsp_media_n_streams(media); i++) {
            const stream = rtsp.gst_rtsp_media_get_stream(media, i);
            if (stream !== null) streams.push(stream);
          }
        }
      });
    this.#letGoUnread(read);
    if (this.#waking) {
      if (sessionRefs !== null) releaseOffThread(sessionRefs);
      return;
    }
    // Released once every call has returned: they keep the streams, and transports, alive.
    this.#waking = true;
    void Promise.allSettled(streams.map(async (stream) => {
      const transports = await rtsp.gst_rtsp_stream_transport_filter_async(stream, null, null);
      if (transports === null) return;
      try {
        await rtsp.gst_rtsp_stream_transport_message_sent_async(
          readPointer(transports, Layout.GList.data)!,
        );
      } finally {
        releaseOffThread(transports);
      }
    })).then(() => {
      if (sessionRefs !== null) releaseOffThread(sessionRefs);
      this.#waking = false;
    });
  }

  /** Lets go of the held medias that `read` has not held for the linger time. */
  #letGoUnread(read: Set<bigint>): void {
    const now = performance.now();
    for (const [path, held] of [...this.#held]) {
      if (read.has(BigInt(Deno.UnsafePointer.value(held.media)))) held.lastReadAt = now;
      else if (now - held.lastReadAt >= this.#lingerMs) this.#letGo(path);
    }
  }

  /** Whether `path` is served (or will be, once its publisher's record media is made). */
  isMounted(path: string): boolean {
    return this.#factories.has(path) || this.#records.get(path)?.waitingPlay !== undefined;
  }

  /**
   * Why a DESCRIBE of `path`, a shared mount, would be refused now (a pipeline's path before every
   * stream has started), without the status phrase its reason starts with; null when it would not.
   */
  notReadyReason(path: string): string | null {
    const refusal = this.#describeChecks.get(path)?.(`rtsp://localhost/${path}`) ?? null;
    return refusal === null ? null : refusal.reason.replace(/^[A-Za-z ]+: /, "");
  }

  /** Whether a DESCRIBE of `path` would be answered now: mounted, and not refused by its check. */
  isReady(path: string): boolean {
    return this.isMounted(path) && this.notReadyReason(path) === null;
  }

  /**
   * Serves `build`'s media at rtsp://host:port/{path}, shared by every client. It takes the
   * place of a record factory at the path once the publisher's record media is made (the
   * publisher keeps it): until then the ANNOUNCE under way must still find the record factory.
   * `check` may refuse a DESCRIBE first, with a status and reason of its own.
   */
  mount(path: string, build: MediaBuilder, check?: DescribeCheck): void {
    if (this.isMounted(path)) throw new Error(`RTSP path '${path}' is already mounted`);
    if (check) this.#describeChecks.set(path, check);
    const record = this.#records.get(path);
    if (record !== undefined && !record.made) {
      record.waitingPlay = build;
      return;
    }
    this.#mountPlay(path, build);
  }

  /**
   * Serves at rtsp://host:port/{path} a media of its own to each client (not shared), built from
   * the request's URI: its query chooses what is played. `check` may refuse a DESCRIBE first, with
   * a status and reason of its own (an empty media would give the client a puzzling error later).
   */
  mountPerClient(path: string, build: MediaBuilder, check: DescribeCheck): void {
    if (this.isMounted(path)) throw new Error(`RTSP path '${path}' is already mounted`);
    this.#describeChecks.set(path, check);
    const factory = this.#newFactory(build, this.#permissions);
    this.#factories.set(path, BigInt(Deno.UnsafePointer.value(factory)));
    lib().rtsp.gst_rtsp_mount_points_add_factory(this.#mounts, cstr(`/${path}`), factory);
  }

  #mountPlay(path: string, build: MediaBuilder): void {
    const { rtsp, gobject } = lib();
    const factory = this.#newFactory(build, this.#permissions);
    rtsp.gst_rtsp_media_factory_set_shared(factory, 1);
    const key = BigInt(Deno.UnsafePointer.value(factory));
    // Each media made then costs two waits for the main thread (its construction and preroll).
    if (this.#lingerMs > 0) {
      gobject.g_signal_connect_data(
        factory,
        cstr("media-constructed"),
        mediaConstructed.pointer,
        null,
        null,
        0,
      );
      preparedHandlers.set(key, (media) => this.#hold(path, key, media));
    }
    this.#factories.set(path, key);
    const record = this.#records.get(path);
    if (record) record.mounted = false;
    // Takes the place of the record factory, whose builder stays for a request that found it.
    lib().rtsp.gst_rtsp_mount_points_add_factory(this.#mounts, cstr(`/${path}`), factory);
  }

  /** A factory of ours building with `build`, with `permissions` (without, auth refuses it to all). */
  #newFactory(build: MediaBuilder, permissions: Pointer): Pointer {
    const { rtsp, gobject } = lib();
    const factory = gobject.g_object_new_with_properties(mediaFactoryType(), 0, null, null)!;
    rtsp.gst_rtsp_media_factory_set_permissions(factory, permissions);
    builders.set(BigInt(Deno.UnsafePointer.value(factory)), build);
    return factory;
  }

  /** Makes the publisher's record media at `path` (its depay0, depay1... take its RTP). */
  #mountRecord(path: string, build: MediaBuilder, publisher: Pointer): void {
    const { rtsp, gobject } = lib();
    this.unmountRecord(path, publisher);
    const record = { made: false, mounted: true } as RecordMount;
    const factory = this.#newFactory((uri) => {
      const bin = build(uri);
      record.made = true;
      const play = record.waitingPlay;
      record.waitingPlay = undefined;
      if (play !== undefined) this.#mountPlay(path, play);
      return bin;
    }, this.#recordPermissions);
    rtsp.gst_rtsp_media_factory_set_transport_mode(factory, TRANSPORT_MODE_RECORD);
    // Not eos-shutdown: it would pass on what the record media's jitter buffer holds when the
    // publisher leaves, but a media whose publisher vanished before its streams were set up never
    // sees that EOS and never stops (the race test left 16 RTP sessions and 89 sockets).
    record.factory = gobject.g_object_ref(factory)!;
    record.publisher = gobject.g_object_ref(publisher)!;
    // Taken while the publisher's thread waits for this ANNOUNCE check: its connection is open.
    const connection = rtsp.gst_rtsp_client_get_connection(publisher);
    const socket = connection && lib().rtspMessage.gst_rtsp_connection_get_read_socket(connection);
    record.publisherSocket = socket ? gobject.g_object_ref(socket) : null;
    record.key = BigInt(Deno.UnsafePointer.value(factory));
    this.#records.set(path, record);
    rtsp.gst_rtsp_mount_points_add_factory(this.#mounts, cstr(`/${path}`), factory);
  }

  /**
   * Forgets a publish's record factory (its publish ended), taking it off the path if it is there,
   * and closes its publisher's connection: a publisher the server let go (removed, silent, never
   * recording) would otherwise go on sending into a media nobody reads, holding its client thread,
   * its sockets and its RTP session until it quits by itself.
   */
  unmountRecord(path: string, announcing: Pointer | null = null): void {
    const record = this.#records.get(path);
    if (record === undefined) return;
    const { publisher, publisherSocket } = record;
    const { glib, gio } = lib();
    // Its socket is shut down rather than the client closed (gst_rtsp_client_close): that closes
    // the connection under the client's thread, which may be reading a request from it (a CRITICAL,
    // or worse). The client's thread then sees the end of its connection and closes it itself.
    // Not the client announcing again on it.
    if (publisherSocket !== null && !Deno.UnsafePointer.equals(publisher, announcing)) {
      gio.g_socket_shutdown(publisherSocket, 1, 1, null);
    }
    const held = glib.g_list_append(null, publisher)!;
    releaseOffThread(publisherSocket === null ? held : glib.g_list_append(held, publisherSocket)!);
    this.#records.delete(path);
    builders.delete(record.key);
    if (record.waitingPlay !== undefined) {
      this.#mountPlay(path, record.waitingPlay);
    } else if (record.mounted) {
      lib().rtsp.gst_rtsp_mount_points_remove_factory(this.#mounts, cstr(`/${path}`));
    }
    // A record factory is never shared, so it caches no media: freeing it here waits on nothing.
    lib().gobject.g_object_unref(record.factory);
  }

  unmount(path: string): void {
    // First: a mount still waiting for a record media has a check but no factory yet, and the
    // check reads the owner's elements, which are freed after this.
    this.#describeChecks.delete(path);
    const record = this.#records.get(path);
    if (record !== undefined) record.waitingPlay = undefined;
    const key = this.#factories.get(path);
    if (key === undefined) return;
    this.#factories.delete(path);
    builders.delete(key);
    preparedHandlers.delete(key);
    this.#letGo(path);
    lib().rtsp.gst_rtsp_mount_points_remove_factory(this.#mounts, cstr(`/${path}`));
  }

  /**
   * Keeps `media`, the shared media of `path` just prepared, prepared while it is read and for
   * the linger time after (RtspServerOptions.lingerMs). gst-rtsp-server sets a shared media to
   * NULL when its last reader leaves, and meanwhile its factory gives that media to a new DESCRIBE
   * and refuses to prepare it: a bare 503 to a reader that closed its connection and came back at
   * once (one in two). Counted as one more user of it (gst_rtsp_media_prepare of a prepared
   * media), the media goes down only when tendMedias lets go of it. An empty media (its streams
   * could not be built) is not held: the next reader gets a new one.
   */
  #hold(path: string, key: bigint, media: Pointer): void {
    const { gobject, rtsp } = lib();
    if (this.#stopping || this.#factories.get(path) !== key || this.#held.has(path)) return;
    if (rtsp.gst_rtsp_media_n_streams(media) === 0) return;
    gobject.g_object_ref(media);
    const counted = rtsp.gst_rtsp_media_prepare_async(media, null).then((ok) => ok !== 0);
    const held: HeldMedia = { media, lastReadAt: performance.now(), counted };
    this.#held.set(path, held);
    // Refused: it was going down already (its reader left). The next media is held instead.
    void counted.then((ok) => {
      if (ok || this.#held.get(path) !== held) return;
      this.#held.delete(path);
      unrefOffThread(media);
    });
  }

  /**
   * Stops keeping the media of `path` prepared: the last user's unprepare sets it to NULL. A
   * DESCRIBE of the path while that runs is still refused (a bare 503), as it was at every leave
   * before #hold; a media is let go the linger time after its last reader left, or with its path.
   */
  #letGo(path: string): void {
    const held = this.#held.get(path);
    if (held === undefined) return;
    this.#held.delete(path);
    const done: Promise<void> = held.counted
      .then(async (counted) => {
        if (counted) await lib().rtsp.gst_rtsp_media_unprepare_async(held.media);
      })
      .finally(() => {
        unrefOffThread(held.media);
        this.#lettingGo.delete(done);
      });
    this.#lettingGo.add(done);
  }

  /** Stops the GLib loop thread. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#cleanupTimer);
    for (const path of [...this.#factories.keys()]) this.unmount(path);
    for (const path of [...this.#records.keys()]) this.unmountRecord(path);
    if (await resolvesWithin(Promise.all(this.#lettingGo), LET_GO_TIMEOUT_MS) === "timed out") {
      console.warn(`RTSP medias still going down after ${LET_GO_TIMEOUT_MS} ms; stopping anyway`);
    }
    lib().glib.g_main_loop_quit(this.#loop);
    await this.#loopDone;
    // The servers keep their references to the auth; a request after this finds no checker.
    requestCheckers.delete(BigInt(Deno.UnsafePointer.value(this.#auth)));
  }
}
