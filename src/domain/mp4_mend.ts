/**
 * Mends the index of an MP4 segment that a crash cut short, in place, so that every player reads
 * it up to its last whole fragment.
 *
 * Recordings are written by mp4mux in fragment-mode first-moov-then-finalise: the moov first (its
 * `trex` defaults all 0), then per second an `mdat` followed by the `moof` that indexes it, one
 * `trun` per interleaved chunk. GStreamer 1.22's mp4mux leaves a field out of a `trun` when it
 * equals the `tfhd` default it started the fragment with, then drops that default from the `tfhd`
 * when a later sample differs: the left-out field falls back to `trex`, 0. A duration of 0 only
 * mistimes a sample, but a size of 0 makes FFmpeg refuse the whole file ("error reading header"):
 * an audio chunk of one frame the size of the fragment's first one did it in about one cut
 * segment in eight. A finalised segment (a stop, or a segment closed while recording) has its own
 * sample tables and no `moof`, so nothing here touches it.
 *
 * The mend changes no box's size, so no offset moves:
 * - a `trun` that has durations but no sizes takes its sizes in the durations' place (a chunk's
 *   samples fill it up to the next chunk, and the sizes were all the same, as mp4mux left them
 *   out only so); its samples then take the track's `trex` default duration;
 * - a `trun` with neither (its durations were the default too) has no room for them: when all such
 *   samples of a track have one size, it becomes the track's `trex` default size;
 * - each track's `trex` default duration, when 0, becomes the track's most common duration.
 * A fragment whose samples are still without a size after that (two sizes for one default, or a
 * chunk that could not be measured) would make FFmpeg refuse the whole file, so the file is cut
 * where that fragment starts: it keeps every fragment before it.
 */

const TFHD_BASE_DATA_OFFSET = 0x1;
const TFHD_DEFAULT_DURATION = 0x8;
const TFHD_DEFAULT_SIZE = 0x10;
const TRUN_DATA_OFFSET = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_COMPOSITION_OFFSET = 0x800;
/** A moov or moof larger than this is not one mp4mux wrote for a segment: left alone. */
const MAX_INDEX_BOX = 16 << 20;

export interface Mp4Box {
  type: string;
  /** Where the box starts in its buffer or file, and where its body starts. */
  start: number;
  body: number;
  end: number;
}

/** The boxes of `view` between `from` and `to`; stops at one that does not fit. */
export function* mp4Boxes(view: DataView, from: number, to: number): Generator<Mp4Box> {
  let at = from;
  while (at + 8 <= to) {
    let size = view.getUint32(at);
    let body = at + 8;
    if (size === 1) {
      if (at + 16 > to) return;
      size = Number(view.getBigUint64(at + 8));
      body = at + 16;
    }
    if (size < body - at || at + size > to) return;
    yield { type: boxType(view, at + 4), start: at, body, end: at + size };
    at += size;
  }
}

function boxType(view: DataView, at: number): string {
  return String.fromCharCode(...new Uint8Array(view.buffer, view.byteOffset + at, 4));
}

function child(view: DataView, parent: Mp4Box, type: string): Mp4Box[] {
  return [...mp4Boxes(view, parent.body, parent.end)].filter((box) => box.type === type);
}

/** The top-level boxes of a file whole on disk; a box cut by the crash ends the list. */
async function topLevelBoxes(file: Deno.FsFile, length: number): Promise<Mp4Box[]> {
  const found: Mp4Box[] = [];
  const header = new Uint8Array(16);
  const view = new DataView(header.buffer);
  let at = 0;
  while (at + 8 <= length) {
    await file.seek(at, Deno.SeekMode.Start);
    const read = await readFully(file, header.subarray(0, Math.min(16, length - at)));
    if (read < 8) break;
    let size = view.getUint32(0);
    let body = at + 8;
    if (size === 1 && read === 16) {
      size = Number(view.getBigUint64(8));
      body = at + 16;
    } else if (size === 0) {
      size = length - at; // to the end of the file: the mdat being written
    }
    if (size < body - at || at + size > length) break;
    found.push({ type: boxType(view, 4), start: at, body, end: at + size });
    at += size;
  }
  return found;
}

async function readFully(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const read = await file.read(into.subarray(done));
    if (read === null) break;
    done += read;
  }
  return done;
}

async function readBox(file: Deno.FsFile, box: Mp4Box): Promise<DataView> {
  const bytes = new Uint8Array(box.end - box.start);
  await file.seek(box.start, Deno.SeekMode.Start);
  if (await readFully(file, bytes) < bytes.length) throw new Error("short read");
  return new DataView(bytes.buffer);
}

async function writeBox(file: Deno.FsFile, box: Mp4Box, view: DataView): Promise<void> {
  await file.seek(box.start, Deno.SeekMode.Start);
  const bytes = new Uint8Array(view.buffer);
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

interface TrackDefaults {
  /** Where the trex's default duration is, in the moov (its default size follows). */
  durationAt: number;
  duration: number;
  size: number;
  /** How often each explicit duration of the track occurs. */
  durations: Map<number, number>;
  /** Whether a sample of the track takes the trex duration. */
  takesDefaultDuration: boolean;
  /** The sizes of samples whose `trun` has neither durations nor sizes: they take the trex's. */
  defaultSizes: number[];
  /** A sample without a size could not be measured: no default size is set for the track. */
  unmeasured: boolean;
}

interface Chunk {
  start: number;
  run: Mp4Box;
  count: number;
  flags: number;
  /** The track of a `trun` that has no sizes and no default to take them from; else undefined. */
  missing?: TrackDefaults;
  /** Whether its track's `tfhd` has a default duration (a swap would give the samples that one). */
  defaultDuration: boolean;
}

/**
 * Mends the `trun` and `trex` boxes of an MP4 file cut short while mp4mux wrote it fragmented
 * (see above); returns how many changes it made (sizes of a `trun`, `trex` defaults, one for a
 * cut at a fragment left without sizes), or null when the file has no `moov` (mp4mux writes it
 * with the first whole fragment) or no fragment a player could read: such a file holds nothing a
 * player can read. A file with no `moof` is left as it is. Everything is read
 * and checked before anything is written.
 */
export async function mendCutMp4(path: string): Promise<number | null> {
  using file = await Deno.open(path, { read: true, write: true });
  const length = (await file.stat()).size;
  const top = await topLevelBoxes(file, length);
  const moofs = top.filter((box) => box.type === "moof" && box.end - box.start <= MAX_INDEX_BOX);
  const moov = top.find((box) => box.type === "moov");
  if (moov === undefined) return null;
  if (moofs.length === 0 || moov.end - moov.start > MAX_INDEX_BOX) return 0;
  const mdats = top.filter((box) => box.type === "mdat");
  const moovView = await readBox(file, moov);
  const root = { type: "moov", start: 0, body: moov.body - moov.start, end: moov.end - moov.start };
  const tracks = new Map<number, TrackDefaults>();
  for (const mvex of child(moovView, root, "mvex")) {
    for (const trex of child(moovView, mvex, "trex")) {
      // version and flags, track_ID, sample description index, duration, size, flags
      if (trex.end - trex.body < 24) continue;
      tracks.set(moovView.getUint32(trex.body + 4), {
        durationAt: trex.body + 12,
        duration: moovView.getUint32(trex.body + 12),
        size: moovView.getUint32(trex.body + 16),
        durations: new Map(),
        takesDefaultDuration: false,
        defaultSizes: [],
        unmeasured: false,
      });
    }
  }
  let mended = 0;
  let rewritten: { box: Mp4Box; view: DataView }[] = [];
  /** Fragments with samples whose size only their track's default could give, or none could. */
  const unsized: { moof: Mp4Box; tracks: Set<TrackDefaults>; unmeasured: boolean }[] = [];
  for (const moof of moofs) {
    const view = await readBox(file, moof);
    const chunks = moofChunks(view, moof, tracks);
    // A chunk whose data cannot be placed leaves the others' extents unknown: the moof stays.
    if (chunks === null) continue;
    chunks.sort((a, b) => a.start - b.start);
    let changed = false;
    const waiting = { moof, tracks: new Set<TrackDefaults>(), unmeasured: false };
    for (const [index, chunk] of chunks.entries()) {
      const track = chunk.missing;
      if (track === undefined) continue;
      const mdat = mdats.find((box) => box.body <= chunk.start && chunk.start < box.end);
      const end = Math.min(chunks[index + 1]?.start ?? Infinity, mdat?.end ?? -Infinity);
      const total = end - chunk.start;
      if (mdat === undefined || total <= 0 || total % chunk.count !== 0) {
        track.unmeasured = true;
        waiting.unmeasured = true;
        continue;
      }
      if (!(chunk.flags & TRUN_DURATION) || chunk.defaultDuration) {
        track.defaultSizes.push(total / chunk.count); // no field to put it in
        waiting.tracks.add(track);
        continue;
      }
      mended++;
      changed = true;
      view.setUint32(chunk.run.body, (view.getUint32(chunk.run.body) | TRUN_SIZE) & ~TRUN_DURATION);
      // With durations left out, each entry's size takes the place its duration had.
      forEachEntry(chunk.run, chunk.flags, chunk.count, (entry) => {
        view.setUint32(entry, total / chunk.count);
      });
    }
    if (changed) rewritten.push({ box: moof, view });
    if (waiting.unmeasured || waiting.tracks.size > 0) unsized.push(waiting);
  }
  let defaultsSet = false;
  for (const track of tracks.values()) {
    if (track.duration !== 0 || !track.takesDefaultDuration || track.durations.size === 0) continue;
    const [common] = [...track.durations].reduce((a, b) => (b[1] > a[1] ? b : a));
    moovView.setUint32(track.durationAt, common);
    mended++;
    defaultsSet = true;
  }
  for (const track of tracks.values()) {
    // Only one size can be the default: with two, or one not measured, those samples stay.
    const [size, ...others] = new Set(track.defaultSizes);
    if (track.size !== 0 || track.unmeasured || size === undefined || others.length > 0) continue;
    moovView.setUint32(track.durationAt + 4, size);
    track.size = size;
    mended++;
    defaultsSet = true;
  }
  if (defaultsSet) rewritten.push({ box: moov, view: moovView });
  const broken = unsized.find((fragment) =>
    fragment.unmeasured || [...fragment.tracks].some((track) => track.size === 0)
  );
  // The fragment's data comes before its moof: the file is cut at that mdat.
  const cutAt = broken === undefined
    ? undefined
    : mdats.filter((mdat) => mdat.end <= broken.moof.start).at(-1)?.start ?? broken.moof.start;
  // Nothing before it but the moov: no sample a player could read.
  if (cutAt !== undefined && !moofs.some((other) => other.end <= cutAt)) return null;
  if (cutAt !== undefined) {
    rewritten = rewritten.filter(({ box }) => box.end <= cutAt);
    mended++;
    console.warn(
      `${path}: a fragment's sample sizes cannot be told; ` +
        `cut off from it on (${length - cutAt} of ${length} bytes)`,
    );
  }
  for (const { box, view } of rewritten) await writeBox(file, box, view);
  if (cutAt !== undefined) await file.truncate(cutAt);
  if (rewritten.length > 0 || cutAt !== undefined) await file.syncData();
  return mended;
}

/**
 * Every chunk of a moof: where its data starts, and whether its `trun` lacks sizes it cannot take
 * from a default. Null when a `traf` or `trun` is not as mp4mux writes them (no base data offset,
 * no data offset, shorter than its fields): then no extent can be trusted.
 */
function moofChunks(
  view: DataView,
  moof: Mp4Box,
  tracks: Map<number, TrackDefaults>,
): Chunk[] | null {
  const self = { type: "moof", start: 0, body: moof.body - moof.start, end: moof.end - moof.start };
  const chunks: Chunk[] = [];
  for (const traf of child(view, self, "traf")) {
    const tfhd = child(view, traf, "tfhd")[0];
    if (tfhd === undefined || tfhd.end - tfhd.body < 8) return null;
    const tfhdFlags = view.getUint32(tfhd.body) & 0xffffff;
    if (!(tfhdFlags & TFHD_BASE_DATA_OFFSET) || tfhd.end - tfhd.body < 16) return null;
    const track = tracks.get(view.getUint32(tfhd.body + 4));
    const base = Number(view.getBigUint64(tfhd.body + 8));
    const defaultDuration = (tfhdFlags & TFHD_DEFAULT_DURATION) !== 0;
    const defaultSize = (tfhdFlags & TFHD_DEFAULT_SIZE) !== 0 || (track?.size ?? 0) !== 0;
    for (const run of child(view, traf, "trun")) {
      if (run.end - run.body < 8) return null;
      const flags = view.getUint32(run.body) & 0xffffff;
      const count = view.getUint32(run.body + 4);
      const fields = 12 + ((flags & TRUN_FIRST_SAMPLE_FLAGS) ? 4 : 0) + count * entrySize(flags);
      if (!(flags & TRUN_DATA_OFFSET) || run.end - run.body < fields) return null;
      if (count === 0) continue;
      const start = base + view.getInt32(run.body + 8);
      const missing = track !== undefined && !(flags & TRUN_SIZE) && !defaultSize;
      chunks.push({
        start,
        run,
        count,
        flags,
        defaultDuration,
        missing: missing ? track : undefined,
      });
      if (track === undefined) continue;
      if (missing || (!(flags & TRUN_DURATION) && !defaultDuration)) {
        track.takesDefaultDuration = true;
      }
      if (flags & TRUN_DURATION) {
        forEachEntry(run, flags, count, (entry) => {
          const duration = view.getUint32(entry);
          track.durations.set(duration, (track.durations.get(duration) ?? 0) + 1);
        });
      }
    }
  }
  return chunks;
}

/** The bytes of each entry of a `trun` with these flags. */
function entrySize(flags: number): number {
  return [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_COMPOSITION_OFFSET]
    .filter((present) => flags & present).length * 4;
}

/** Calls `visit` with where each entry of a `trun` starts, in the moof's view. */
function forEachEntry(
  run: Mp4Box,
  flags: number,
  count: number,
  visit: (at: number) => void,
): void {
  const perEntry = entrySize(flags);
  let entry = run.body + 12 + ((flags & TRUN_FIRST_SAMPLE_FLAGS) ? 4 : 0);
  for (let index = 0; index < count && entry + perEntry <= run.end; index++) {
    visit(entry);
    entry += perEntry;
  }
}
