/**
 * The web console: `GET /` serves its page and `GET /console/...` its bundled assets, built from
 * console/src by `deno task console:build` into console/dist (checked in, so users build nothing).
 * Anyone may load them: the page asks for the token itself, and the assets hold no secrets.
 */
import { extname, join, normalize } from "node:path";
import { type HttpRoute, presentsToken, refusedUnlessRead, sendJson } from "./server.ts";

export const CONSOLE_ASSETS_PATH = "/console/";

/** What the page needs to know about this server, written into it as <meta> tags. */
export interface ConsoleSettings {
  /** The WebSocket path (GSTREAMER_WS_PATH). */
  wsPath: string;
  /** The RTSP server's port, for the URLs the console shows. */
  rtspPort: number;
  /** GSTREAMER_AUTH_TOKEN, when set. */
  authToken?: string;
}

/** Answers whether a token is needed and whether the request presents it (the login asks). */
export const CONSOLE_SESSION_PATH = "/console/session";

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

// The graph renderer compiles WebAssembly; everything else comes from this server.
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
  "connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
  "media-src 'self' blob:; frame-ancestors 'none'";

export function consoleRoute(
  directory: string,
  settings: ConsoleSettings,
): HttpRoute {
  const cache = new Map<string, Uint8Array>();
  const read = async (file: string): Promise<Uint8Array | null> => {
    const cached = cache.get(file);
    if (cached) return cached;
    try {
      const bytes = await Deno.readFile(join(directory, file));
      cache.set(file, bytes);
      return bytes;
    } catch (error) {
      // A folder ("/console/", "/console/."), a file taken for one ("/console/main.js/"), or a
      // name longer than a file's can be.
      if (
        error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory ||
        error instanceof Deno.errors.NotADirectory ||
        (error as { code?: string }).code === "ENAMETOOLONG"
      ) return null;
      throw error;
    }
  };
  const escape = (text: string) => text.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  const meta = `<meta name="gst-ws-path" content="${escape(settings.wsPath)}">\n` +
    `    <meta name="gst-rtsp-port" content="${settings.rtspPort}">`;

  return async (request, response, url) => {
    if (url.pathname !== "/" && !url.pathname.startsWith(CONSOLE_ASSETS_PATH)) return false;
    if (refusedUnlessRead(request, response, url)) return true;
    if (url.pathname === CONSOLE_SESSION_PATH) {
      const token = settings.authToken;
      sendJson(response, 200, {
        auth: token !== undefined,
        authorized: token === undefined || presentsToken(request, url, token),
      });
      return true;
    }
    let file: string;
    if (url.pathname === "/") {
      file = "index.html";
    } else { // under CONSOLE_ASSETS_PATH (the route's first check)
      file = normalize(url.pathname.slice(CONSOLE_ASSETS_PATH.length));
      if (
        file.startsWith("..") || file.startsWith("/") || file.endsWith("/") ||
        file === "index.html"
      ) {
        sendJson(response, 404, {
          error: { code: "NOT_FOUND", message: `No console file ${url.pathname}` },
        });
        return true;
      }
    }
    let bytes = await read(file);
    if (bytes === null) {
      sendJson(response, 404, {
        error: {
          code: "NOT_FOUND",
          message: file === "index.html"
            ? "The console is not built: run 'deno task console:build'"
            : `No console file ${url.pathname}`,
        },
      });
      return true;
    }
    if (file === "index.html") {
      bytes = new TextEncoder().encode(
        new TextDecoder().decode(bytes).replace("<!-- server settings -->", meta),
      );
    }
    response.writeHead(200, {
      "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
      "content-length": bytes.length,
      // Chunk names carry their content's hash; the page and its entry are checked each time.
      "cache-control": /-[A-Z0-9]{8}\.js$/.test(file) ? "max-age=31536000, immutable" : "no-cache",
      "content-security-policy": CONTENT_SECURITY_POLICY,
      "x-content-type-options": "nosniff",
      // Public code: other origins' pages may import the WHEP player.
      ...(file.endsWith(".js") ? { "access-control-allow-origin": "*" } : {}),
      "referrer-policy": "no-referrer",
    });
    response.end(request.method === "HEAD" ? undefined : bytes);
    return true;
  };
}
