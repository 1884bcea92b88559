/**
 * Small, pure edits of SDP text for WebRTC negotiation (RFC 8866 lines, CRLF or LF).
 *
 * webrtcbin 1.22 matches an offered m-line to a transceiver by the m-line's first format only,
 * so an offer that lists VP8 first is never matched to a transceiver that sends H.264. The
 * server moves the format it will send to the front of the offer first; the answer then names
 * that format, which is one the offerer listed, as RFC 3264 asks.
 */

/** A format (payload type) of an m-line, as the offer describes it. */
export interface OfferedFormat {
  payloadType: number;
  /** The encoding name from a=rtpmap, upper case ("H264"), or "" when the line has none. */
  encoding: string;
  clockRate: number;
  /** a=fmtp parameters, keys in lower case. */
  parameters: Record<string, string>;
}

interface Section {
  /** The m= line's index among the lines. */
  line: number;
  media: string;
  formats: OfferedFormat[];
}

function splitLines(sdp: string): { lines: string[]; eol: string } {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return { lines, eol };
}

function sections(lines: string[]): Section[] {
  const found: Section[] = [];
  lines.forEach((line, index) => {
    const media = /^m=(\S+) \S+ \S+((?: \S+)*)$/.exec(line);
    if (media) {
      const formats = media[2].trim().split(" ").filter((f) => /^\d+$/.test(f)).map((f) => ({
        payloadType: Number(f),
        encoding: "",
        clockRate: 0,
        parameters: {},
      }));
      found.push({ line: index, media: media[1], formats });
      return;
    }
    const current = found.at(-1);
    if (!current) return;
    const rtpmap = /^a=rtpmap:(\d+) ([^/\s]+)\/(\d+)/.exec(line);
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    const format = (pt: string) => current.formats.find((f) => f.payloadType === Number(pt));
    if (rtpmap) {
      const f = format(rtpmap[1]);
      if (f) {
        f.encoding = rtpmap[2].toUpperCase();
        f.clockRate = Number(rtpmap[3]);
      }
    } else if (fmtp) {
      const f = format(fmtp[1]);
      if (f) {
        for (const pair of fmtp[2].split(";")) {
          const [key, ...value] = pair.trim().split("=");
          if (key) f.parameters[key.toLowerCase()] = value.join("=");
        }
      }
    }
  });
  return found;
}

/** The media sections of an SDP: "video", "audio", ..., each with its offered formats. */
export function offeredMedia(sdp: string): { media: string; formats: OfferedFormat[] }[] {
  return sections(splitLines(sdp).lines).map(({ media, formats }) => ({ media, formats }));
}

/**
 * The SDP with, in the `index`th media section, the format `payloadType` moved to the front of
 * the m= line's format list. Everything else is left as it was.
 */
export function preferFormat(sdp: string, index: number, payloadType: number): string {
  const { lines, eol } = splitLines(sdp);
  const section = sections(lines)[index];
  if (!section || !section.formats.some((f) => f.payloadType === payloadType)) {
    throw new Error(`media section ${index} offers no payload type ${payloadType}`);
  }
  const parts = lines[section.line].split(" ");
  const head = parts.slice(0, 3);
  const formats = parts.slice(3).filter((f) => f !== String(payloadType));
  lines[section.line] = [...head, String(payloadType), ...formats].join(" ");
  return lines.join(eol) + eol;
}

/**
 * The offered H.264 format to answer with: packetization mode 1 (the mode rtph264pay sends),
 * constrained baseline 3.1 (42e01f) when offered, as every browser decodes that. The stream's
 * own profile goes in the answer (see withoutFmtpParameter). Null when none is offered.
 */
export function chooseH264(formats: OfferedFormat[]): OfferedFormat | null {
  const usable = formats.filter((f) =>
    f.encoding === "H264" && f.clockRate === 90000 && f.parameters["packetization-mode"] === "1"
  );
  return usable.find((f) => f.parameters["profile-level-id"]?.toLowerCase() === "42e01f") ??
    usable[0] ?? null;
}

/**
 * The SDP with the fmtp parameter `name` removed from payload type `payloadType`, wherever it is
 * described. (The H.264 profile-level-id: webrtcbin 1.22 compares it as a plain string with the
 * stream's, so an offer of 42e01f never matches a stream of 42c015, though a browser decodes
 * it; without it, the answer carries the stream's own.)
 */
export function withoutFmtpParameter(sdp: string, payloadType: number, name: string): string {
  const { lines, eol } = splitLines(sdp);
  const prefix = `a=fmtp:${payloadType} `;
  const edited = lines.map((line) => {
    if (!line.startsWith(prefix)) return line;
    const kept = line.slice(prefix.length).split(";").map((p) => p.trim())
      .filter((p) => p !== "" && p.split("=")[0].toLowerCase() !== name.toLowerCase());
    return `${prefix}${kept.join(";")}`;
  });
  return edited.join(eol) + eol;
}

/** The offered Opus format (48 kHz, as RFC 7587 has it), or null. */
export function chooseOpus(formats: OfferedFormat[]): OfferedFormat | null {
  return formats.find((f) => f.encoding === "OPUS" && f.clockRate === 48000) ?? null;
}

/**
 * The SDP with the `index`th media section offering `payloadType` only: the other formats leave
 * its m= line with their a=rtpmap, a=fmtp and a=rtcp-fb lines. (webrtcbin 1.22 answers every
 * offered format when its transceiver has no codec preference, and the offerer would send the
 * first it likes; a WHIP publisher must send the one the server takes.)
 */
export function onlyFormat(sdp: string, index: number, payloadType: number): string {
  const { lines, eol } = splitLines(sdp);
  const all = sections(lines);
  const section = all[index];
  if (!section || !section.formats.some((f) => f.payloadType === payloadType)) {
    throw new Error(`media section ${index} offers no payload type ${payloadType}`);
  }
  const end = all[index + 1]?.line ?? lines.length;
  const dropped = new Set(
    section.formats.map((f) => f.payloadType).filter((pt) => pt !== payloadType),
  );
  const kept = lines.filter((line, at) => {
    if (at <= section.line || at >= end) return true;
    const format = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+) /.exec(line);
    return !(format && dropped.has(Number(format[1])));
  });
  kept[section.line] = [...lines[section.line].split(" ").slice(0, 3), String(payloadType)]
    .join(" ");
  return kept.join(eol) + eol;
}

/**
 * What a WHEP or WHIP offer lacks for a session that uses its m-lines `used`, named with where it
 * belongs, or null. Each used m-line must let media go the protocol's way: a WHEP viewer receives
 * (recvonly), a WHIP publisher sends (sendonly); sendrecv allows both. webrtcbin would otherwise
 * fail with a message of its own, or answer with an inactive stream that never carries anything.
 */
export function offerProblem(
  sdp: string,
  used: number[],
  protocol: "WHEP" | "WHIP",
): string | null {
  if (sdp.includes("\0")) return "The offer holds a NUL byte: an SDP offer is text";
  const direction = protocol === "WHEP" ? "recvonly" : "sendonly";
  const { lines } = splitLines(sdp);
  const all = sections(lines);
  const sessionLines = lines.slice(0, all[0]?.line ?? lines.length);
  // An attribute with an empty value is none (webrtcbin refuses it as missing).
  const has = (found: string[], name: string) =>
    found.some((line) =>
      line.startsWith(`a=${name}:`) && line.slice(name.length + 3).trim() !== ""
    );
  const directions = ["sendrecv", "sendonly", "recvonly", "inactive"];
  const directionIn = (found: string[]) =>
    found.map((line) => line.slice(2)).find((value) => directions.includes(value));
  const sessionDirection = directionIn(sessionLines) ?? "sendrecv";
  /** The attribute lines of m-line `index`. */
  const linesOf = (index: number) =>
    lines.slice(all[index].line + 1, all[index + 1]?.line ?? lines.length);
  // webrtcbin takes a group naming a mid no m-line has, and the session then never connects.
  const mids = all.map((_, index) =>
    linesOf(index).find((line) => line.startsWith("a=mid:"))?.slice(6).trim()
  );
  for (const group of sessionLines.filter((line) => line.startsWith("a=group:BUNDLE"))) {
    const unknown = group.slice(14).trim().split(/\s+/).find((mid) => mid && !mids.includes(mid));
    if (unknown !== undefined) {
      return `The offer's a=group:BUNDLE names mid '${unknown}', which no m-line has: expected ` +
        `the mids of its m-lines (${mids.filter((mid) => mid).join(", ") || "none"})`;
    }
  }
  for (const index of used) {
    const section = all[index];
    if (!section) continue;
    const sectionLines = linesOf(index);
    const where = `m-line ${index} (${section.media})`;
    for (
      const [name, what] of [
        ["fingerprint", "its DTLS certificate's fingerprint"],
        ["ice-ufrag", "its ICE user fragment"],
        ["ice-pwd", "its ICE password"],
      ]
    ) {
      if (!has(sectionLines, name) && !has(sessionLines, name)) {
        return `The offer has no a=${name} (or an empty one) for ${where}, nor for the session: ` +
          `a WebRTC offer carries ${what}`;
      }
    }
    if (!has(sectionLines, "mid")) {
      return `The offer's ${where} has no a=mid (or an empty one): a WebRTC offer names each ` +
        "m-line (a=mid:0)";
    }
    // Port 0 rejects an m-line (RFC 3264), unless BUNDLE carries it on another's (RFC 8843).
    const port = lines[section.line].split(" ")[1];
    if (/^0+(\/\d+)?$/.test(port) && !sectionLines.includes("a=bundle-only")) {
      return `The offer's ${where} has port 0, which rejects it: expected a port (9, as WebRTC ` +
        "offers give), or a=bundle-only with its mid in an a=group:BUNDLE";
    }
    const setup = sectionLines.find((line) => line.startsWith("a=setup:"))?.slice(8);
    if (setup !== undefined && !["actpass", "active", "passive"].includes(setup)) {
      return `The offer's ${where} has a=setup:${setup}: expected actpass (or active or passive)`;
    }
    const outOfRange = lines[section.line].split(" ").slice(3).find((format) =>
      !/^\d+$/.test(format) || Number(format) > 127
    );
    if (outOfRange !== undefined) {
      return `The offer's ${where} lists payload type ${outOfRange}: RTP payload types are 0 to 127`;
    }
    const said = directionIn(sectionLines) ?? sessionDirection;
    if (said !== direction && said !== "sendrecv") {
      return `The offer's ${where} is ${said}: a ${protocol} offer ` +
        `${protocol === "WHEP" ? "receives" : "sends"}, so expected ${direction} (or sendrecv)`;
    }
  }
  return null;
}
