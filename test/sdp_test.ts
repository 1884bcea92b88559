/** The SDP edits made before webrtcbin sees a WHEP offer (src/domain/sdp.ts). */
import assert from "node:assert/strict";
import {
  chooseH264,
  chooseOpus,
  offeredMedia,
  offerProblem,
  onlyFormat,
  preferFormat,
  withoutFmtpParameter,
} from "../src/domain/sdp.ts";

// The shape of Chromium's recvonly video offer, cut down: VP8 first, then H.264 in two profiles
// and packetization modes.
const offer = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=rtpmap:111 opus/48000/2",
  "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104",
  "a=rtpmap:96 VP8/90000",
  "a=rtpmap:97 rtx/90000",
  "a=fmtp:97 apt=96",
  "a=rtpmap:102 H264/90000",
  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
  "a=rtpmap:103 H264/90000",
  "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
  "a=rtpmap:104 H264/90000",
  "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  "",
].join("\r\n");

Deno.test("offeredMedia reads each m-line's formats with their rtpmap and fmtp", () => {
  const media = offeredMedia(offer);
  assert.deepEqual(media.map((m) => m.media), ["audio", "video"]);
  assert.deepEqual(media[1].formats.map((f) => f.payloadType), [96, 97, 102, 103, 104]);
  assert.deepEqual(media[1].formats[4], {
    payloadType: 104,
    encoding: "H264",
    clockRate: 90000,
    parameters: {
      "level-asymmetry-allowed": "1",
      "packetization-mode": "1",
      "profile-level-id": "42e01f",
    },
  });
});

Deno.test("chooseH264 takes packetization mode 1, constrained baseline 3.1 first", () => {
  const formats = offeredMedia(offer)[1].formats;
  assert.equal(chooseH264(formats)?.payloadType, 104);
  assert.equal(chooseH264(formats.filter((f) => f.payloadType !== 104))?.payloadType, 103);
  assert.equal(
    chooseH264(formats.filter((f) => f.encoding !== "H264" || f.payloadType === 102)),
    null,
  );
});

Deno.test("preferFormat moves one format to the front of its m-line and changes nothing else", () => {
  const edited = preferFormat(offer, 1, 104);
  assert.ok(edited.includes("m=video 9 UDP/TLS/RTP/SAVPF 104 96 97 102 103\r\n"));
  assert.equal(edited.replace(" 104 96 97 102 103", " 96 97 102 103 104"), offer);
  assert.throws(() => preferFormat(offer, 1, 111), /offers no payload type 111/);
  // LF-only text keeps LF.
  assert.ok(!preferFormat(offer.replaceAll("\r\n", "\n"), 0, 111).includes("\r"));
});

Deno.test("withoutFmtpParameter drops one parameter of one payload type", () => {
  const edited = withoutFmtpParameter(offer, 104, "profile-level-id");
  assert.ok(edited.includes("a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1\r\n"));
  assert.ok(edited.includes("profile-level-id=64001f"), "other payload types keep theirs");
});

Deno.test("onlyFormat keeps one format of one m-line with its lines, and the other m-lines whole", () => {
  const withFeedback = offer.replace(
    "a=rtpmap:104 H264/90000",
    "a=rtcp-fb:96 nack\r\na=rtcp-fb:104 nack pli\r\na=rtcp-fb:* transport-cc\r\na=rtpmap:104 H264/90000",
  );
  const edited = onlyFormat(withFeedback, 1, 104);
  const lines = edited.split("\r\n");
  assert.ok(lines.includes("m=video 9 UDP/TLS/RTP/SAVPF 104"), edited);
  assert.ok(lines.includes("a=rtcp-fb:104 nack pli"));
  assert.ok(lines.includes("a=rtcp-fb:* transport-cc"));
  assert.ok(!/a=(rtpmap|fmtp|rtcp-fb):(96|97|102|103) /.test(edited), edited);
  assert.deepEqual(offeredMedia(edited)[0], offeredMedia(offer)[0]);
  assert.deepEqual(offeredMedia(edited)[1].formats.map((f) => f.payloadType), [104]);
  assert.throws(() => onlyFormat(offer, 0, 104), /offers no payload type 104/);
});

Deno.test("chooseOpus takes Opus at 48 kHz, or nothing", () => {
  assert.equal(chooseOpus(offeredMedia(offer)[0].formats)?.payloadType, 111);
  assert.equal(chooseOpus(offeredMedia(offer)[1].formats), null);
});

// A whole recvonly offer, as a WHEP viewer sends it: fingerprint at the session (as Firefox puts
// it), ICE and setup per m-line (as Chromium does).
const whole = (video: string[], session: string[] = ["a=fingerprint:sha-256 AB:CD"]) =>
  [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    ...session,
    "m=video 9 UDP/TLS/RTP/SAVPF 102",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f",
    ...video,
    "",
  ].join("\r\n");
const media = ["a=ice-ufrag:u", "a=ice-pwd:p", "a=mid:0", "a=setup:actpass"];

Deno.test("offerProblem names what a WHEP or WHIP offer lacks, and which way its m-line goes", () => {
  assert.equal(offerProblem(whole([...media, "a=recvonly"]), [0], "WHEP"), null);
  assert.equal(offerProblem(whole([...media, "a=sendrecv"]), [0], "WHEP"), null);
  assert.equal(offerProblem(whole(media), [0], "WHEP"), null, "sendrecv when unsaid");
  assert.equal(offerProblem(whole([...media, "a=sendonly"]), [0], "WHIP"), null);
  assert.equal(
    offerProblem(whole(media, ["a=fingerprint:sha-256 AB:CD", "a=recvonly"]), [0], "WHIP"),
    "The offer's m-line 0 (video) is recvonly: a WHIP offer sends, so expected sendonly (or " +
      "sendrecv)",
    "the session's direction, when the m-line says none",
  );
  for (
    const [video, session, problem] of [
      [
        [...media, "a=sendonly"],
        undefined,
        /m-line 0 \(video\) is sendonly: a WHEP offer receives/,
      ],
      [[...media, "a=inactive"], undefined, /is inactive: a WHEP offer receives/],
      [media, [], /no a=fingerprint \(or an empty one\) for m-line 0 \(video\), nor for the/],
      [media.slice(1), undefined, /no a=ice-ufrag \(or an empty one\) for m-line 0/],
      [[media[0], ...media.slice(2)], undefined, /no a=ice-pwd \(or an empty one\) for m-line 0/],
      [[...media.slice(0, 2), media[3]], undefined, /m-line 0 \(video\) has no a=mid/],
      // Empty values are none: webrtcbin refused them (502), where they are the offer's mistake.
      [[...media.slice(0, 2), "a=mid:", media[3]], undefined, /has no a=mid \(or an empty one\)/],
      [["a=ice-ufrag: ", ...media.slice(1)], undefined, /no a=ice-ufrag \(or an empty one\)/],
      [[media[0], "a=ice-pwd:", ...media.slice(2)], undefined, /no a=ice-pwd \(or an empty/],
      [[...media.slice(0, 3), "a=setup:bogus"], undefined, /a=setup:bogus: expected actpass/],
    ] as const
  ) {
    const found = offerProblem(whole([...video], session && [...session]), [0], "WHEP");
    assert.match(found ?? "null", problem);
  }
  const pt999 = whole(media).replace("SAVPF 102", "SAVPF 102 999");
  assert.match(
    offerProblem(pt999, [0], "WHEP") ?? "null",
    /m-line 0 \(video\) lists payload type 999: RTP payload types are 0 to 127/,
  );
  // GstSDP reads a C string: a NUL would hide the offer from it (one first aborted the server).
  assert.match(offerProblem(`\0${whole(media)}`, [0], "WHEP") ?? "null", /holds a NUL byte/);
  // A group naming a mid no m-line has, and a port 0 m-line, were answered 201 and never connected.
  assert.match(
    offerProblem(
      whole(media, ["a=group:BUNDLE 0 1", "a=fingerprint:sha-256 AB:CD"]),
      [0],
      "WHEP",
    ) ??
      "null",
    /a=group:BUNDLE names mid '1', which no m-line has: expected the mids of its m-lines \(0\)/,
  );
  assert.equal(
    offerProblem(whole(media, ["a=group:BUNDLE 0", "a=fingerprint:sha-256 AB:CD"]), [0], "WHEP"),
    null,
  );
  const rejected = whole(media).replace("m=video 9 ", "m=video 0 ");
  assert.match(
    offerProblem(rejected, [0], "WHEP") ?? "null",
    /m-line 0 \(video\) has port 0, which rejects it: expected a port \(9/,
  );
  assert.equal(
    offerProblem(
      whole([...media, "a=bundle-only"]).replace("m=video 9 ", "m=video 0 "),
      [0],
      "WHEP",
    ),
    null,
    "a bundle-only m-line has port 0",
  );
  // Only the m-lines used are checked.
  assert.equal(offerProblem(whole([...media, "a=recvonly"]), [], "WHIP"), null);
});

Deno.test("chooseH264 takes no H.264 at a clock rate other than 90 kHz", () => {
  assert.equal(
    chooseH264(offeredMedia(whole(media).replace("H264/90000", "H264/0"))[0].formats),
    null,
  );
});
