/**
 * The C floor (bench/floor.c): built once into a folder, then run for a number of cycles, either as
 * the control-plane bench's floor (calls made directly, back to back) or with an idle time before
 * each cycle and the calls handed to a worker thread, as bench/hops.ts compares.
 */

/** bench/floor.c compiled into `dir`; null (with the reason printed) when it cannot be built. */
export async function buildFloor(dir: string): Promise<string | null> {
  const binary = `${dir}/floor`;
  const source = new URL("./floor.c", import.meta.url).pathname;
  const build = await new Deno.Command("sh", {
    args: [
      "-c",
      `cc "$1" -o "$2" $(pkg-config --cflags --libs gstreamer-1.0)`,
      "sh",
      source,
      binary,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((error) => ({ success: false, stderr: new TextEncoder().encode(`${error}`) }));
  if (!build.success) {
    console.warn(
      `WARNING: no C floor (bench/floor.c did not build: ${
        new TextDecoder().decode(build.stderr).trim().split("\n")[0]
      }); bench/build_gstd.sh installs gcc and the GStreamer headers`,
    );
    return null;
  }
  return binary;
}

/**
 * `cycles` create -> PLAYING times (ms) of the C floor; `idleUs` before each cycle, and with
 * `handOff` each call made on a worker thread, as the server makes them on Deno's pool.
 */
export async function runFloor(
  binary: string,
  cycles: number,
  options: { idleUs?: number; handOff?: boolean } = {},
): Promise<number[]> {
  const args = [
    String(cycles),
    String(options.idleUs ?? 0),
    ...(options.handOff ? ["hand-off"] : []),
  ];
  const output = await new Deno.Command(binary, { args, stdout: "piped" }).output();
  if (!output.success) throw new Error(`${binary} failed with ${output.code}`);
  return new TextDecoder().decode(output.stdout).trim().split("\n").map((us) => Number(us) / 1000);
}
