/** Typed errors with a stable machine code; `src/protocol.ts` maps them to replies. */

export const errorCodes = [
  "UNKNOWN_ELEMENT",
  "ELEMENT_NOT_ALLOWED",
  "PROPERTY_NOT_ALLOWED",
  "UNKNOWN_PROPERTY",
  "INVALID_PROPERTY_VALUE",
  "LINK_FAILED",
  "DUPLICATE_ID",
  "PATH_IN_USE",
  "INVALID_ID",
  "PIPELINE_NOT_FOUND",
  "ELEMENT_NOT_FOUND",
  "INVALID_REQUEST",
  "UNKNOWN_TYPE",
  "MESSAGE_TOO_LARGE",
  "LIMIT_REACHED",
  "RATE_LIMITED",
  "UNAUTHORIZED",
  "ORIGIN_NOT_ALLOWED",
  "STORAGE_FAILED",
  "STATE_CHANGE_FAILED",
  "INVALID_STATE",
  "SEEK_FAILED",
  "INTERNAL",
] as const;

export type ErrorCode = typeof errorCodes[number];

export class ServerError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ServerError";
  }
}
