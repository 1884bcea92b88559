/**
 * What a client may put in a pipeline. Anyone who can send a createPipeline
 * could otherwise write files anywhere, read any file, or reach the server's
 * own descriptors and shared memory; the threat model is in README.md.
 */
import { realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DomainError } from "./errors.ts";
import type { JsonValue } from "../gst/gvalue.ts";

/** Refused unless GSTREAMER_ELEMENTS_ALLOW names them, with the reason given to clients. */
export const defaultDeniedElements: ReadonlyMap<string, string> = new Map([
  ...["filesink", "multifilesink", "splitmuxsink", "giosink", "curlfilesink", "hlssink", "hlssink2"]
    .map((name) => [name, "it writes files on the server"] as const),
  ["dashsink", "it writes files on the server"],
  ["qtmoovrecover", "it writes files on the server"],
  ...["fdsrc", "fdsink", "multifdsink", "socketsrc", "multisocketsink", "giostreamsrc"]
    .map((name) => [name, "it reads or writes the server's own file descriptors"] as const),
  ["giostreamsink", "it reads or writes the server's own file descriptors"],
  ...["shmsrc", "shmsink"].map((name) =>
    [name, "it reads or writes shared memory on the server"] as const
  ),
  ...["ipcpipelinesrc", "ipcpipelinesink", "ipcslavepipeline"].map((name) =>
    [name, "it runs pipelines controlled through the server's file descriptors"] as const
  ),
]);

/** Elements whose `location` is always a local file, whatever it looks like. */
const fileElements = new Set([
  "filesrc",
  "multifilesrc",
  "splitfilesrc",
  "splitmuxsrc",
  "imagesequencesrc",
  "pushfilesrc",
]);

const urlPattern = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Text properties that name files or directories on the server, read or written: location,
 * temp-location, moov-recovery-file, faststart-file, multipass-cache-file, temp-template,
 * ssh-priv-keyfile, ... They are confined like locations.
 */
const fileProperty = /(^|-)(location|file|filename|keyfile|dir|directory|template|profile)$/;

export interface PolicyOptions {
  /** Every local file an element reads must be inside this directory. */
  mediaDir: string;
  /** Names (or `*`) lifted from the default refusals. */
  allow?: string[];
  /** Names or prefixes ending in `*` refused on top of the defaults. */
  deny?: string[];
  /** Refusals nothing can lift (elements that would crash the process). */
  fixed?: ReadonlyMap<string, string>;
  /** `fd` properties allowed: only the server's own pipelines, which pass it their own pipes. */
  descriptors?: boolean;
}

export class ElementPolicy {
  readonly mediaDir: string;
  readonly #allow: Set<string>;
  readonly #deny: string[];
  readonly #fixed: ReadonlyMap<string, string>;
  readonly #descriptors: boolean;

  constructor(options: PolicyOptions) {
    this.mediaDir = realpathSync(options.mediaDir);
    this.#allow = new Set(options.allow ?? []);
    this.#deny = options.deny ?? [];
    this.#fixed = options.fixed ?? new Map();
    this.#descriptors = options.descriptors ?? false;
  }

  /** Why `type` is refused, or undefined when it may be used. */
  refusal(type: string): string | undefined {
    const fixed = this.#fixed.get(type);
    if (fixed !== undefined) return fixed;
    const denied = this.#deny.some((rule) =>
      rule.endsWith("*") ? type.startsWith(rule.slice(0, -1)) : rule === type
    );
    if (denied) return "GSTREAMER_ELEMENTS_DENY refuses it";
    if (this.#allow.has(type) || this.#allow.has("*")) return undefined;
    return defaultDeniedElements.get(type);
  }

  /** Throws ELEMENT_NOT_ALLOWED when `type` may not be used. */
  checkType(type: string, details: Record<string, unknown>): void {
    const reason = this.refusal(type);
    if (reason === undefined) return;
    throw new DomainError(
      "ELEMENT_NOT_ALLOWED",
      `Element '${type}' is not allowed: ${reason}`,
      { ...details, type, reason },
    );
  }

  /**
   * The value to give the property: file locations and file: URIs are resolved
   * inside the media directory (relative ones against it); one that leads out
   * of it, by `..` or by a symlink, is refused with PROPERTY_NOT_ALLOWED.
   */
  checkProperty(
    type: string,
    element: string,
    property: string,
    value: JsonValue,
    holdsText: boolean,
  ): JsonValue {
    // Judged by the name GObject finds, which may be given as `Type::name` or with `_` for `-`.
    const name = canonicalPropertyName(property);
    if (/(^|-)fd$/.test(name) && !this.#descriptors) {
      throw new DomainError(
        "PROPERTY_NOT_ALLOWED",
        `Property '${property}' of element '${element}' names one of the server's own file ` +
          "descriptors, which clients may not use",
        { element, property, value },
      );
    }
    if (typeof value !== "string") return value;
    const isUri = /(?:^|-)(?:sub)?uri$/.test(name); // uri, dest-uri, playbin's suburi...
    const isLocation = !isUri && holdsText && fileProperty.test(name);
    if (!isLocation && !isUri) return value;
    // GLib opens `file:/path` as well as `file:///path`: any `file:` prefix is a file URI.
    const scheme = /^file:/i.test(value) ? "file" : value.match(urlPattern)?.[1]?.toLowerCase();
    const refuse = (why: string): never => {
      throw new DomainError(
        "PROPERTY_NOT_ALLOWED",
        `Property '${property}' of element '${element}' ${why}; files are read from ` +
          `GSTREAMER_MEDIA_DIR (${this.mediaDir}) only`,
        { element, property, value, mediaDir: this.mediaDir },
      );
    };
    if (scheme === "file") {
      let path: string;
      try {
        path = fileURLToPath(value);
      } catch {
        return refuse(`has a file URI that names no local file: ${JSON.stringify(value)}`);
      }
      return pathToFileURL(this.#confine(path, refuse)).href;
    }
    if (scheme !== undefined && !fileElements.has(type)) return value; // rtsp://, http://, srt://...
    if (isUri) return value; // a URI with no scheme names no file GStreamer would open
    return this.#confine(value, refuse);
  }

  #confine(path: string, refuse: (why: string) => never): string {
    if (path.includes("\0")) refuse("contains a NUL character");
    const absolute = resolve(this.mediaDir, path);
    if (!this.#inside(absolute)) refuse(`points outside the media directory: ${path}`);
    if (!this.#inside(realPathOfExisting(absolute))) {
      refuse(`leads outside the media directory through a symbolic link: ${path}`);
    }
    return absolute;
  }

  #inside(path: string): boolean {
    const rel = relative(this.mediaDir, path);
    return rel === "" || (rel.split(sep)[0] !== ".." && !isAbsolute(rel));
  }
}

/**
 * The property name g_object_class_find_property resolves `property` to: a `Type::` prefix
 * dropped and every character other than letters, digits and `-` read as `-`.
 */
function canonicalPropertyName(property: string): string {
  const prefix = property.lastIndexOf("::");
  return (prefix === -1 ? property : property.slice(prefix + 2)).replace(/[^A-Za-z0-9-]/g, "-");
}

/** The real path of `path`, or of its nearest existing ancestor joined with the rest. */
function realPathOfExisting(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    if (parent === path) return path;
    return resolve(realPathOfExisting(parent), relative(parent, path));
  }
}
