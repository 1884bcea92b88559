/**
 * mendCutMp4 on small fragmented MP4 files made here, shaped as mp4mux writes them (a moov, then
 * per fragment an mdat and the moof that indexes it): a fragment whose samples cannot be given a
 * size is cut off with every fragment after it, since FFmpeg refuses a whole file for one sample
 * of size 0.
 */
import assert from "node:assert/strict";
import { mendCutMp4, mp4Boxes } from "../src/domain/mp4_mend.ts";

const u32 = (value: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
};
const u64 = (value: number) => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value));
  return bytes;
};

function box(type: string, ...parts: Uint8Array[]): Uint8Array {
  const size = 8 + parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(size);
  out.set(u32(size));
  out.set(new TextEncoder().encode(type), 4);
  let at = 8;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A moov whose one track (id 1) has trex defaults of 0 for duration and size. */
const moov = box("moov", box("mvex", box("trex", u32(0), u32(1), u32(1), u32(0), u32(0), u32(0))));

/**
 * One fragment at file offset `at`: an mdat of the chunks' bytes, then its moof with a `trun` per
 * chunk (with sizes when `sized`, else with neither durations nor sizes).
 */
function fragment(at: number, chunks: number[][], sized: boolean): Uint8Array {
  const data = new Uint8Array(chunks.flat().reduce((sum, size) => sum + size, 0));
  const mdat = box("mdat", data);
  let offset = 0;
  const runs = chunks.map((sizes) => {
    const run = box(
      "trun",
      u32(sized ? 0x201 : 0x001),
      u32(sizes.length),
      u32(offset),
      ...(sized ? sizes.map(u32) : []),
    );
    offset += sizes.reduce((sum, size) => sum + size, 0);
    return run;
  });
  const tfhd = box("tfhd", u32(0x1), u32(1), u64(at + 8));
  const moof = box("moof", box("traf", tfhd, ...runs));
  const out = new Uint8Array(mdat.length + moof.length);
  out.set(mdat);
  out.set(moof, mdat.length);
  return out;
}

async function fileOf(parts: Uint8Array[]): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  await Deno.writeFile(path, bytes);
  return path;
}

/** The trex default size of the file's one track. */
function trexSize(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer);
  const [moovBox] = mp4Boxes(view, 0, bytes.length);
  const [mvex] = mp4Boxes(view, moovBox.body, moovBox.end);
  const [trex] = mp4Boxes(view, mvex.body, mvex.end);
  return view.getUint32(trex.body + 16);
}

Deno.test("a fragment whose samples have two sizes for one default is cut off, with what follows; the fragments before it stay", async () => {
  const first = fragment(moov.length, [[10, 10]], true);
  const second = fragment(moov.length + first.length, [[8], [12]], false);
  const third = fragment(moov.length + first.length + second.length, [[10, 10]], true);
  const path = await fileOf([moov, first, second, third]);
  try {
    assert.equal(await mendCutMp4(path), 1);
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, moov.length + first.length, "cut where the second fragment starts");
    assert.deepEqual(bytes, await fileOfBytes([moov, first]));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("samples of one size without sizes take it as their track's default, and nothing is cut", async () => {
  const first = fragment(moov.length, [[10, 10]], true);
  const second = fragment(moov.length + first.length, [[10], [10]], false);
  const path = await fileOf([moov, first, second]);
  try {
    assert.equal(await mendCutMp4(path), 1);
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, moov.length + first.length + second.length);
    assert.equal(trexSize(bytes), 10);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a file whose first fragment cannot be given sizes holds nothing to read: null, left as it is", async () => {
  const only = fragment(moov.length, [[8], [12]], false);
  const path = await fileOf([moov, only]);
  try {
    assert.equal(await mendCutMp4(path), null);
    assert.deepEqual(await Deno.readFile(path), await fileOfBytes([moov, only]));
  } finally {
    await Deno.remove(path);
  }
});

/** The bytes `fileOf` would write for `parts`. */
async function fileOfBytes(parts: Uint8Array[]): Promise<Uint8Array> {
  const path = await fileOf(parts);
  try {
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(path);
  }
}
