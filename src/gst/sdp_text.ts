/**
 * SDP text parsed by GstSDP (gst_sdp_message_new_from_text), after refusing what it would assert
 * on. It reads a C string, so empty text, or text that starts with a NUL, reaches
 * gst_sdp_message_parse_buffer with size 0: a CRITICAL, which aborts the server under
 * G_DEBUG=fatal-criticals (an empty ANNOUNCE body and a WHEP offer led by a NUL did). Text with a
 * NUL anywhere is refused too: GstSDP would read only what comes before it, our checks all of it.
 */
import { cstr, lib, type Pointer, pointerSlot, slotPointer } from "./native.ts";

/** The parsed message (the caller frees it with gst_sdp_message_free), or null when refused. */
export function parseSdpText(text: string): Pointer | null {
  if (text === "" || text.includes("\0")) return null;
  const slot = pointerSlot();
  if (lib().sdp.gst_sdp_message_new_from_text(cstr(text), slot) !== 0) return null;
  return slotPointer(slot);
}
