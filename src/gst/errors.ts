/**
 * What the GStreamer layer reports when a request names something GStreamer does not have or
 * cannot take. The API layer turns these into wire error codes (src/api/errors.ts); the codes
 * here are ours, named after the wire codes they become.
 */
export type GstErrorCode = "UNKNOWN_ELEMENT" | "UNKNOWN_PROPERTY" | "INVALID_PROPERTY_VALUE";

export class GstError extends Error {
  constructor(
    readonly code: GstErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "GstError";
  }
}
