/**
 * Opens the GStreamer family of shared libraries by soname, with an
 * environment override and an error that lists every path that was tried.
 */

export type LibraryName =
  | "glib-2.0"
  | "gobject-2.0"
  | "gmodule-2.0"
  | "gio-2.0"
  | "gstreamer-1.0"
  | "gstapp-1.0"
  | "gstbase-1.0"
  | "gstrtspserver-1.0"
  | "gstrtsp-1.0"
  | "gstsdp-1.0"
  | "gstwebrtc-1.0"
  | "nice";

/** Package names that provide each library, for the install hint. */
const installHint: Record<LibraryName, { apt: string; brew: string }> = {
  "glib-2.0": { apt: "libglib2.0-0", brew: "glib" },
  "gobject-2.0": { apt: "libglib2.0-0", brew: "glib" },
  "gmodule-2.0": { apt: "libglib2.0-0", brew: "glib" },
  "gio-2.0": { apt: "libglib2.0-0", brew: "glib" },
  "gstreamer-1.0": { apt: "libgstreamer1.0-0", brew: "gstreamer" },
  "gstapp-1.0": { apt: "libgstreamer-plugins-base1.0-0", brew: "gstreamer" },
  "gstbase-1.0": { apt: "libgstreamer1.0-0", brew: "gstreamer" },
  "gstrtspserver-1.0": { apt: "libgstrtspserver-1.0-0", brew: "gstreamer" },
  "gstrtsp-1.0": { apt: "libgstreamer-plugins-base1.0-0", brew: "gstreamer" },
  "gstsdp-1.0": { apt: "libgstreamer-plugins-base1.0-0", brew: "gstreamer" },
  "gstwebrtc-1.0": { apt: "libgstreamer-plugins-bad1.0-0 gstreamer1.0-nice", brew: "gstreamer" },
  nice: { apt: "libnice10 gstreamer1.0-nice", brew: "libnice" },
};

export class LibraryLoadError extends Error {
  constructor(
    readonly library: LibraryName,
    readonly attempts: { path: string; error: string }[],
  ) {
    const hint = installHint[library];
    super(
      `Could not open the ${library} library. Tried:\n` +
        attempts.map((a) => `  ${a.path}: ${a.error}`).join("\n") +
        `\nInstall it with 'apt-get install ${hint.apt}' (Debian/Ubuntu) or ` +
        `'brew install ${hint.brew}' (macOS), or set GSTREAMER_LIB_DIR to the ` +
        `folder that holds it. './start_server.sh' installs everything.`,
    );
    this.name = "LibraryLoadError";
  }
}

/** File names to try, most specific first. */
export function candidatePaths(
  library: LibraryName,
  os: typeof Deno.build.os = Deno.build.os,
  libDir = Deno.env.get("GSTREAMER_LIB_DIR"),
): string[] {
  // The GStreamer family's sonames end in .0; libnice's in its own ABI number.
  const major = library === "nice" ? "10" : "0";
  const fileName = os === "darwin"
    ? `lib${library.replace(/-(\d+)\.(\d+)$/, "-$1.$2")}.${major}.dylib`
    : os === "windows"
    ? `${library.replace(/-(\d+\.\d+)$/, "-$1")}-${major}.dll`
    : `lib${library}.so.${major}`;
  // An explicit folder is the only place looked at, so a wrong setting is reported, not hidden.
  if (libDir) return [`${libDir.replace(/\/$/, "")}/${fileName}`];
  const paths: string[] = [];
  if (os === "darwin") {
    paths.push(`/opt/homebrew/lib/${fileName}`, `/usr/local/lib/${fileName}`);
  }
  paths.push(fileName);
  return paths;
}

export function openLibrary<const S extends Deno.ForeignLibraryInterface>(
  library: LibraryName,
  symbols: S,
): Deno.DynamicLibrary<S> {
  const attempts: { path: string; error: string }[] = [];
  for (const path of candidatePaths(library)) {
    try {
      return Deno.dlopen(path, symbols);
    } catch (error) {
      attempts.push({
        path,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  throw new LibraryLoadError(library, attempts);
}
