/**
 * Recognises the container or codec of the first bytes of a push body, so a sender whose body is
 * not the declared format (an MP4 file posted as video/h264, H.265 posted as H.264) can be told
 * what it sent and how to send something accepted, instead of a parser error later on.
 *
 * Pure: bytes in, an answer out. Magic numbers are checked first (they sit at fixed offsets),
 * then MPEG-TS (its payload may hold 00 00 01, which would read as Annex-B), then Annex-B, then
 * H.264 with 4-byte lengths instead of start codes (the AVC form).
 */

export type SniffedFormat =
  | "mpegts"
  | "h264"
  | "h265"
  | "avc"
  | "mp4"
  | "flv"
  | "matroska"
  | "unknown";

export interface Sniff {
  format: SniffedFormat;
  /** A human label: "MPEG-TS", "MP4/MOV", "FLV", "Matroska/WebM", "H.264 Annex-B", ... */
  label: string;
}

/** Bytes needed to decide (the caller buffers at least this many, or the whole body if shorter). */
export const SNIFF_BYTES = 64 * 1024;

const labels: Record<SniffedFormat, string> = {
  mpegts: "MPEG-TS",
  h264: "H.264 Annex-B",
  h265: "H.265 Annex-B",
  avc: "H.264 in AVC form (4-byte lengths, no start codes)",
  mp4: "MP4/MOV",
  flv: "FLV",
  matroska: "Matroska/WebM",
  unknown: "unknown",
};

export function sniff(bytes: Uint8Array): Sniff {
  return sniffWithCertainty(bytes).sniff;
}

/**
 * Whether more bytes could change the answer: fewer than SNIFF_BYTES given, the body not ended,
 * and the answer is "unknown" or rests on thin evidence (two MPEG-TS packets; Annex-B without a
 * parameter set), which more bytes could overturn.
 */
export function needsMore(bytes: Uint8Array, ended: boolean): boolean {
  if (ended || bytes.length >= SNIFF_BYTES) return false;
  return !sniffWithCertainty(bytes).settled;
}

/**
 * For a body that is not the declared format: what would produce an accepted one, as one
 * copy-pasteable sentence; null when the body is the declared format or nothing is known to help.
 */
export function conversionHint(
  found: SniffedFormat,
  declared: "h264" | "h265" | "mpegts",
): string | null {
  if (found === declared || found === "unknown") return null;
  if (found === "avc") {
    return "send Annex-B H.264 (start codes): from GStreamer, x264enc ! " +
      "video/x-h264,stream-format=byte-stream ! souphttpclientsink, with no h264parse before " +
      "the sink (souphttpclientsink drops the buffers h264parse marks as headers: parameter sets " +
      "and key frames); from ffmpeg, -bsf:v h264_mp4toannexb -f h264";
  }
  if (found === "mpegts") return "send it with Content-Type video/mp2t";
  if (found === "h264" || found === "h265") {
    const contentType = `video/${found}`;
    if (declared !== "mpegts") return `send it with Content-Type ${contentType}`;
    // A raw stream has no timestamps, and ffmpeg (5.1) cannot make them for B-frames in a copy.
    const demuxer = found === "h264" ? "h264" : "hevc";
    return `send it with Content-Type ${contentType}, or, if it has no B-frames, wrap it: ` +
      `ffmpeg -f ${demuxer} -i INPUT -c copy -f mpegts -`;
  }
  // A container (MP4, FLV, Matroska): its video must leave it.
  if (declared === "mpegts") return "remux it to MPEG-TS: ffmpeg -i INPUT -c copy -f mpegts -";
  const [codec, bsf, muxer] = declared === "h264"
    ? ["H.264", "h264_mp4toannexb", "h264"]
    : ["H.265", "hevc_mp4toannexb", "hevc"];
  return `convert to Annex-B ${codec}: ffmpeg -i INPUT -c:v copy -bsf:v ${bsf} -an -f ${muxer} - ` +
    "(or send MPEG-TS: -c copy -f mpegts with Content-Type video/mp2t)";
}

interface Answer {
  sniff: Sniff;
  /** Whether more bytes of the same body cannot change the answer. */
  settled: boolean;
}

function answer(format: SniffedFormat, settled: boolean): Answer {
  return { sniff: { format, label: labels[format] }, settled };
}

function sniffWithCertainty(whole: Uint8Array): Answer {
  const bytes = whole.length > SNIFF_BYTES ? whole.subarray(0, SNIFF_BYTES) : whole;
  const magic = magicFormat(bytes);
  if (magic) return answer(magic, true);
  const ts = alignedTsPackets(bytes);
  if (ts >= 2) return answer("mpegts", ts >= MIN_TS_PACKETS);
  const annexB = annexBCodec(bytes);
  if (annexB) return answer(annexB.codec, annexB.fromParameterSet);
  const lengthPrefixed = lengthPrefixedNals(bytes);
  if (lengthPrefixed >= 2) return answer("avc", lengthPrefixed >= 3);
  return answer("unknown", false);
}

// --- Magic numbers ---------------------------------------------------------------------------

/** Box types an ISO BMFF file (ftyp) or an old QuickTime file (no ftyp) may begin with. */
const firstBoxTypes = new Set(["ftyp", "moov", "mdat", "free", "wide", "skip"]);
const EBML_MAGIC = [0x1a, 0x45, 0xdf, 0xa3];

function magicFormat(bytes: Uint8Array): SniffedFormat | undefined {
  if (startsWith(bytes, EBML_MAGIC)) return "matroska";
  if (startsWith(bytes, [...ascii("FLV"), 1])) return "flv";
  if (bytes.length >= 8 && firstBoxTypes.has(latin1(bytes.subarray(4, 8)))) {
    // A box size is 0 (to the end), 1 (64-bit size follows) or at least its 8-byte header.
    const size = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
    if (size === 0 || size === 1 || size >= 8) return "mp4";
  }
  return undefined;
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return bytes.length >= prefix.length && prefix.every((byte, i) => bytes[i] === byte);
}

function ascii(text: string): number[] {
  return [...text].map((char) => char.charCodeAt(0));
}

function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

// --- MPEG-TS ---------------------------------------------------------------------------------

const TS_PACKET = 188;
const TS_SYNC = 0x47;
const MIN_TS_PACKETS = 3;

/**
 * The number of consecutive packets (up to MIN_TS_PACKETS) found at the best offset in the first
 * packet length, which allows a body that starts mid-packet. Fewer than MIN_TS_PACKETS only
 * counts when the bytes hold no more, from offset 0; 0 when no offset qualifies.
 */
function alignedTsPackets(bytes: Uint8Array): number {
  let best = 0;
  for (let start = 0; start < TS_PACKET && start < bytes.length; start++) {
    const available = Math.ceil((bytes.length - start) / TS_PACKET);
    const needed = Math.min(available, MIN_TS_PACKETS);
    // Two packets at any of 188 offsets happen in random bytes (about 1 body in 600 of 377
    // bytes): a body too short for three must start at a packet, as a real short one does.
    if (needed < 2 || (needed < MIN_TS_PACKETS && start > 0)) break;
    let found = 0;
    while (found < needed && isTsPacketHeader(bytes, start + found * TS_PACKET)) found++;
    if (found === needed) best = Math.max(best, found);
    if (best === MIN_TS_PACKETS) break;
  }
  return best;
}

/**
 * A sync byte, and an adaptation_field_control other than the reserved 00: that second check
 * keeps a run of 0x47 bytes (a flat area of raw video) from reading as packets.
 */
function isTsPacketHeader(bytes: Uint8Array, offset: number): boolean {
  if (bytes[offset] !== TS_SYNC) return false;
  const flags = bytes[offset + 3];
  return flags === undefined || (flags & 0x30) !== 0;
}

// --- Annex-B ---------------------------------------------------------------------------------

interface NalHeader {
  /** The first header byte; H.265 also needs the second. */
  first: number;
  second: number | undefined;
}

const H264_SPS = 7;
const H264_PPS = 8;
const h264ParameterSets = new Set([H264_SPS, H264_PPS]);
/** Types that must have nal_ref_idc 0 (H.264 7.4.1): SEI, AUD, end of sequence/stream, filler. */
const h264Unreferenced = new Set([6, 9, 10, 11, 12]);
/** Types that must have nal_ref_idc > 0: IDR slice, SPS, PPS. */
const h264Referenced = new Set([5, H264_SPS, H264_PPS]);
/**
 * Types an ordinary stream carries. The data partitions (2 to 4) and the SVC/MVC types are left
 * out because H.265 parameter sets read as them (0x42 is H.264 type 2, 0x44 type 4).
 */
const h264Usual = new Set([1, 5, 6, 7, 8, 9, 10, 11, 12]);

const h265ParameterSets = new Set([32, 33, 34]); // VPS, SPS, PPS
/** Slices 0 to 9 and 16 to 21, VPS, SPS, PPS, AUD, end of sequence/stream, filler, SEI. */
const h265Usual = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 21, ...range(32, 40)]);
/** Types whose TemporalId must be 0: IRAP slices, VPS, SPS, end of sequence/stream (H.265 7.4.2.2). */
const h265TemporalIdZero = new Set([16, 17, 18, 19, 20, 21, 32, 33, 36, 37]);

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function h264Type(nal: NalHeader): number | undefined {
  if (nal.first & 0x80) return undefined; // forbidden_zero_bit
  const type = nal.first & 0x1f;
  const referenced = (nal.first & 0x60) !== 0;
  if (!h264Usual.has(type)) return undefined;
  if (h264Unreferenced.has(type) && referenced) return undefined;
  if (h264Referenced.has(type) && !referenced) return undefined;
  return type;
}

function h265Type(nal: NalHeader): number | undefined {
  if (nal.second === undefined || nal.first & 0x80) return undefined;
  const type = (nal.first >> 1) & 0x3f;
  const layerId = ((nal.first & 1) << 5) | (nal.second >> 3);
  const temporalIdPlus1 = nal.second & 0x07;
  if (!h265Usual.has(type) || layerId !== 0 || temporalIdPlus1 === 0) return undefined;
  if (h265TemporalIdZero.has(type) && temporalIdPlus1 !== 1) return undefined;
  return type;
}

/**
 * H.264 or H.265 when the bytes start (after leading zero bytes) with a start code and the NAL
 * headers after the start codes read as one codec rather than the other. Many headers read as
 * both (an H.264 SEI is an H.265 TSA_N slice), so only those that fit one codec alone count,
 * parameter sets first.
 */
function annexBCodec(
  bytes: Uint8Array,
): { codec: "h264" | "h265"; fromParameterSet: boolean } | undefined {
  const nals = nalHeaders(bytes);
  if (!nals) return undefined;
  const votes = { h264: 0, h265: 0, h264Sets: 0, h265Sets: 0 };
  for (const nal of nals) {
    const as264 = h264Type(nal);
    const as265 = h265Type(nal);
    if (as264 !== undefined && as265 === undefined) {
      votes.h264++;
      if (h264ParameterSets.has(as264)) votes.h264Sets++;
    } else if (as265 !== undefined && as264 === undefined) {
      votes.h265++;
      if (h265ParameterSets.has(as265)) votes.h265Sets++;
    }
  }
  const codec = votes.h264Sets !== votes.h265Sets
    ? (votes.h264Sets > votes.h265Sets ? "h264" : "h265")
    : votes.h264 !== votes.h265
    ? (votes.h264 > votes.h265 ? "h264" : "h265")
    : undefined;
  if (!codec) return undefined;

  const typeOf = codec === "h264" ? h264Type : h265Type;
  const parameterSets = codec === "h264" ? h264ParameterSets : h265ParameterSets;
  const types = nals.map(typeOf);
  if (types[0] === undefined) return undefined; // the NAL at the start tells the codec
  const valid = types.filter((type) => type !== undefined);
  const fromParameterSet = valid.some((type) => parameterSets.has(type));
  // One accidental 00 00 01 in other data must not make an answer.
  if (valid.length < 2 && !fromParameterSet) return undefined;
  return { codec, fromParameterSet };
}

/**
 * How many H.264 NAL units follow each other as 4-byte big-endian length and unit, from the
 * first byte to the end (the last may be cut off); 0 when the chain breaks before the end.
 */
function lengthPrefixedNals(bytes: Uint8Array): number {
  let at = 0;
  let count = 0;
  while (at + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0);
    if (length === 0 || h264Type({ first: bytes[at + 4], second: bytes[at + 5] }) === undefined) {
      return 0;
    }
    count++;
    at += 4 + length;
  }
  return at >= bytes.length ? count : 0;
}

/**
 * The NAL headers after every start code (00 00 01, which 00 00 00 01 ends with); undefined when
 * the bytes do not begin with zero bytes and a start code. A start code at the very end, with no
 * header byte yet, is left out.
 */
function nalHeaders(bytes: Uint8Array): NalHeader[] | undefined {
  let leadingZeros = 0;
  while (leadingZeros < bytes.length && bytes[leadingZeros] === 0) leadingZeros++;
  if (leadingZeros < 2 || bytes[leadingZeros] !== 1) return undefined;
  const nals: NalHeader[] = [];
  for (let i = leadingZeros - 2; i + 3 < bytes.length; i++) {
    if (bytes[i] !== 0 || bytes[i + 1] !== 0 || bytes[i + 2] !== 1) continue;
    nals.push({ first: bytes[i + 3], second: bytes[i + 4] });
    i += 2;
  }
  return nals;
}
