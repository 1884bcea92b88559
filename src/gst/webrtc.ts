/**
 * A webrtcbin's negotiation, driven from JS without blocking the main thread: signals are
 * emitted with g_signal_emitv on the FFI thread pool, and each GstPromise is waited for there
 * too (docs/architecture.md, threading). The element belongs to its pipeline; a WebRtcPeer holds
 * its own reference until release().
 */
import { openLibrary } from "../../ffi/loader.ts";
import {
  niceSymbols,
  promiseSymbols,
  sdpTextSymbols,
  signalSymbols,
  webrtcSymbols,
} from "../../ffi/gstwebrtc.ts";
import { Fundamental, GValue, GVALUE_SIZE } from "./gvalue.ts";
import { instanceType, Layout, readI32, readPointer, readString } from "./layout.ts";
import { cstr, gtype, lib, type Pointer, readCString, takeCString } from "./native.ts";
import { getProperty, setProperty } from "./property.ts";
import { parseSdpText } from "./sdp_text.ts";

function load() {
  const webrtc = openLibrary("gstwebrtc-1.0", webrtcSymbols).symbols;
  const loaded = {
    webrtc,
    promise: openLibrary("gstreamer-1.0", promiseSymbols).symbols,
    signal: openLibrary("gobject-2.0", signalSymbols).symbols,
    sdp: openLibrary("gstsdp-1.0", sdpTextSymbols).symbols,
    nice: openLibrary("nice", niceSymbols).symbols,
    descriptionType: gtype(webrtc.gst_webrtc_session_description_get_type()),
    promiseType: 0n,
  };
  loaded.promiseType = gtype(loaded.promise.gst_promise_get_type());
  checkDescriptionLayout(loaded.webrtc);
  return loaded;
}

let loaded: ReturnType<typeof load> | undefined;
function webrtcLib(): ReturnType<typeof load> {
  loaded ??= load();
  return loaded;
}

/** GstWebRTCSessionDescription: { GstWebRTCSDPType type; GstSDPMessage *sdp; }. */
const Description = { type: 0, sdp: 8 } as const;
const SdpType = { offer: 1, answer: 3 } as const;
const PROMISE_RESULT_REPLIED = 2;

/** The struct is read directly: proved on a description we make before any real one is read. */
function checkDescriptionLayout(webrtc: ReturnType<typeof load>["webrtc"]): void {
  const message = parseSdp("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
  const description = webrtc.gst_webrtc_session_description_new(SdpType.answer, message)!;
  try {
    if (
      readI32(description, Description.type) !== SdpType.answer ||
      Deno.UnsafePointer.value(readPointer(description, Description.sdp)) !==
        Deno.UnsafePointer.value(message)
    ) {
      throw new Error(
        "GstWebRTCSessionDescription is laid out differently than src/gst/webrtc.ts expects",
      );
    }
  } finally {
    webrtc.gst_webrtc_session_description_free(description);
  }
}

/** An SDP message parsed from text (transfer full); throws on text GStreamer cannot read. */
function parseSdp(text: string): Pointer {
  const message = parseSdpText(text);
  if (message === null) throw new Error("the SDP could not be parsed");
  return message;
}

function descriptionText(description: Pointer): string {
  const message = readPointer(description, Description.sdp);
  if (message === null) throw new Error("the session description has no SDP");
  return takeCString(webrtcLib().sdp.gst_sdp_message_as_text(message)) ?? "";
}

/** webrtcbin's action signals used here, each with the type of its argument before the promise. */
const actionArgument = {
  "set-remote-description": () => webrtcLib().descriptionType,
  "set-local-description": () => webrtcLib().descriptionType,
  /** Options: a GstStructure, NULL here. */
  "create-answer": () => gtype(lib().gst.gst_structure_get_type()),
  /** The pad to report on: NULL here, every stream. */
  "get-stats": () => gtype(webrtcLib().promise.gst_pad_get_type()),
};
type ActionSignal = keyof typeof actionArgument;

/** A boxed field of a structure (owned by the structure), or null. */
function boxedField(structure: Pointer | null, field: string): Pointer | null {
  const value = structure === null
    ? null
    : webrtcLib().promise.gst_structure_get_value(structure, cstr(field));
  return value === null ? null : lib().gobject.g_value_get_boxed(
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(value, GVALUE_SIZE)),
  );
}

/** Something webrtcbin refused, with its own words. */
export class NegotiationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NegotiationError";
  }
}

export type IceGatheringState = "new" | "gathering" | "complete";
export type PeerConnectionState =
  | "new"
  | "connecting"
  | "connected"
  | "disconnected"
  | "failed"
  | "closed";

export class WebRtcPeer {
  readonly #element: Pointer;
  #released = false;

  /** Takes its own reference to `element` (a webrtcbin). */
  constructor(element: Pointer) {
    webrtcLib();
    this.#element = lib().gst.gst_object_ref(element)!;
  }

  /** Sets the remote offer or answer. */
  async setRemoteDescription(type: keyof typeof SdpType, sdp: string): Promise<void> {
    const { webrtc } = webrtcLib();
    const description = webrtc.gst_webrtc_session_description_new(SdpType[type], parseSdp(sdp))!;
    try {
      await this.#request("set-remote-description", description, () => undefined);
    } finally {
      webrtc.gst_webrtc_session_description_free(description);
    }
  }

  /** Creates the answer to the remote offer and makes it the local description; its SDP text. */
  createAnswer(): Promise<string> {
    return this.#request("create-answer", null, async (reply) => {
      const answer = boxedField(reply, "answer");
      if (answer === null) throw new NegotiationError("webrtcbin made no answer");
      // Set while the reply still owns the answer (the signal copies it).
      await this.#request("set-local-description", answer, () => undefined);
      return descriptionText(answer);
    });
  }

  /**
   * Makes the transceiver of the linked sink pad `padName` send only, with `caps` as its codec
   * preference: webrtcbin 1.22 matches a remote offer's m-line to a transceiver made from a pad
   * only when the transceiver says what it sends.
   */
  configureSender(padName: string, caps: string): void {
    const { gst, gobject } = lib();
    const pad = gst.gst_element_get_static_pad(this.#element, cstr(padName));
    if (pad === null) throw new Error(`webrtcbin has no pad '${padName}'`);
    const value = new GValue(Fundamental.OBJECT);
    try {
      gobject.g_object_get_property(pad, cstr("transceiver"), value.buffer);
      const transceiver = gobject.g_value_get_object(value.buffer);
      if (transceiver === null) throw new Error(`webrtcbin's pad '${padName}' has no transceiver`);
      const target = { object: transceiver, label: `${padName} transceiver` };
      setProperty(target, "direction", "sendonly");
      setProperty(target, "codec-preferences", caps);
    } finally {
      value.unset();
      gst.gst_object_unref(pad);
    }
  }

  /**
   * Gathers ICE candidates on these addresses only (loopback ones too, which libnice skips when
   * it picks addresses itself); every interface's when `addresses` is empty. Call before the
   * remote description is set.
   */
  gatherOn(addresses: string[], ports?: { min: number; max: number }): void {
    const { nice } = webrtcLib();
    const { gobject } = lib();
    const ice = new GValue(Fundamental.OBJECT);
    const agent = new GValue(Fundamental.OBJECT);
    try {
      gobject.g_object_get_property(this.#element, cstr("ice-agent"), ice.buffer);
      const iceAgent = gobject.g_value_get_object(ice.buffer);
      if (iceAgent === null) throw new Error("webrtcbin has no ICE agent");
      if (ports) {
        const target = { object: iceAgent, label: "ICE agent" };
        setProperty(target, "min-rtp-port", ports.min);
        setProperty(target, "max-rtp-port", ports.max);
      }
      gobject.g_object_get_property(iceAgent, cstr("agent"), agent.buffer);
      const niceAgent = gobject.g_value_get_object(agent.buffer);
      if (niceAgent === null) throw new Error("webrtcbin's ICE agent has no libnice agent");
      for (const text of addresses) {
        const address = nice.nice_address_new()!;
        try {
          if (!nice.nice_address_set_from_string(address, cstr(text))) {
            throw new Error(`'${text}' is not an IP address`);
          }
          nice.nice_agent_add_local_address(niceAgent, address);
        } finally {
          nice.nice_address_free(address);
        }
      }
    } finally {
      agent.unset();
      ice.unset();
    }
  }

  /** Whether the sink pad `padName` has caps yet (its stream has reached webrtcbin). */
  hasCaps(padName: string): boolean {
    const { gst } = lib();
    const pad = gst.gst_element_get_static_pad(this.#element, cstr(padName));
    if (pad === null) return false;
    const caps = gst.gst_pad_get_current_caps(pad);
    gst.gst_object_unref(pad);
    if (caps === null) return false;
    gst.gst_caps_unref(caps);
    return true;
  }

  iceGatheringState(): IceGatheringState {
    return this.#enumProperty("ice-gathering-state") as IceGatheringState;
  }

  /**
   * The latest RTCP receiver report from the peer about what we send, as a text that changes
   * with every report (its highest sequence number, last SR, delay since it, jitter); null
   * before the first. A peer that stops reporting is gone (webrtcbin 1.22 keeps the connection
   * "connected" when a tab is killed). With it, the RTP packets sent so far: a peer sent nothing
   * reports nothing new about it.
   */
  lastReceiverReport(): Promise<{ report: string | null; packetsSent: number }> {
    return this.#request("get-stats", null, (reply) => {
      const { promise: p } = webrtcLib();
      let report: string | null = null;
      let packetsSent = 0;
      if (reply === null) return { report, packetsSent };
      const count = new BigUint64Array(1);
      for (let i = 0; i < p.gst_structure_n_fields(reply); i++) {
        const name = readCString(p.gst_structure_nth_field_name(reply, i)) ?? "";
        if (name.startsWith("rtp-outbound-stream-stats_")) {
          const sent = boxedField(reply, name);
          if (
            sent !== null && lib().gst.gst_structure_get_uint64(sent, cstr("packets-sent"), count)
          ) {
            packetsSent += Number(count[0]);
          }
        }
        if (report !== null || !name.startsWith("rtp-remote-inbound-stream-stats_")) continue;
        // The report block's own figures are in the entry's raw RTP source stats.
        const block = boxedField(boxedField(reply, name), "gst-rtpsource-stats");
        if (block === null) continue;
        const out = new Uint32Array(1);
        report = ["rb-exthighestseq", "rb-lsr", "rb-dlsr", "rb-jitter"].map((field) =>
          p.gst_structure_get_uint(block, cstr(field), out) ? out[0] : -1
        ).join("/");
      }
      return { report, packetsSent };
    });
  }

  connectionState(): PeerConnectionState {
    return this.#enumProperty("connection-state") as PeerConnectionState;
  }

  /** The local description's SDP now (with the candidates gathered so far), or null. */
  localDescription(): string | null {
    const { descriptionType } = webrtcLib();
    const value = new GValue(descriptionType);
    try {
      lib().gobject.g_object_get_property(this.#element, cstr("local-description"), value.buffer);
      const description = lib().gobject.g_value_get_boxed(value.buffer);
      return description === null ? null : descriptionText(description);
    } finally {
      value.unset();
    }
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    lib().gst.gst_object_unref(this.#element);
  }

  #enumProperty(name: string): string {
    return String(getProperty({ object: this.#element, label: "webrtcbin" }, name));
  }

  /**
   * Emits the action signal `name` with `argument` and a promise, waits for the promise off the
   * main thread, and gives its reply (owned by the promise, null when there is none) to `read`
   * before the promise is released.
   */
  async #request<T>(
    name: ActionSignal,
    argument: Pointer | null,
    read: (reply: Pointer | null) => T | Promise<T>,
  ): Promise<T> {
    const promise = webrtcLib().promise.gst_promise_new()!;
    try {
      await this.#emit(name, argument, promise);
      return await read(await this.#wait(promise, name));
    } finally {
      lib().gst.gst_mini_object_unref(promise);
    }
  }

  /** Waits off the main thread; the reply structure (owned by the promise), or null. */
  async #wait(promise: Pointer, what: string): Promise<Pointer | null> {
    const { promise: p } = webrtcLib();
    const result = await p.gst_promise_wait_async(promise);
    if (result !== PROMISE_RESULT_REPLIED) {
      throw new NegotiationError(`webrtcbin did not answer ${what} (promise result ${result})`);
    }
    const reply = p.gst_promise_get_reply(promise);
    if (reply !== null && p.gst_structure_has_field(reply, cstr("error"))) {
      // A GError (owned by the reply), which gst_structure_to_string prints as NULL.
      const error = boxedField(reply, "error");
      const text = (error === null ? null : readString(error, Layout.GError.message)) ??
        takeCString(lib().gst.gst_structure_to_string(reply)) ?? what;
      throw new NegotiationError(`${what} failed: ${text}`);
    }
    return reply;
  }

  /** g_signal_emitv with the instance, `argument` and the promise as GValues, on the FFI pool. */
  async #emit(name: ActionSignal, argument: Pointer | null, promise: Pointer): Promise<void> {
    if (this.#released) throw new Error("the WebRTC peer is released");
    const { signal, promiseType } = webrtcLib();
    const { gobject } = lib();
    const type = instanceType(this.#element);
    const id = signal.g_signal_lookup(cstr(name), type);
    if (id === 0) throw new Error(`webrtcbin has no signal '${name}'`);
    const values = new Uint8Array(GVALUE_SIZE * 3);
    const slot = (i: number) => values.subarray(i * GVALUE_SIZE, (i + 1) * GVALUE_SIZE);
    gobject.g_value_init(slot(0), type);
    signal.g_value_set_object(slot(0), this.#element);
    gobject.g_value_init(slot(1), actionArgument[name]());
    if (argument !== null) signal.g_value_set_boxed(slot(1), argument);
    gobject.g_value_init(slot(2), promiseType);
    signal.g_value_set_boxed(slot(2), promise);
    try {
      await signal.g_signal_emitv_async(values, id, 0, null);
    } finally {
      for (let i = 0; i < 3; i++) gobject.g_value_unset(slot(i));
    }
  }
}
