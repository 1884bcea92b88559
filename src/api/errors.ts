/**
 * The wire's error codes, and the one place where an error becomes what a reply says: domain
 * errors keep their code, GStreamer-layer errors get theirs from a table, errors of the API and
 * transport themselves are ApiErrors, and anything else is INTERNAL (src/api/protocol.ts).
 */
import { DomainError, domainErrorCodes, FieldError, formatPath } from "../domain/errors.ts";
import { GstError, type GstErrorCode } from "../gst/errors.ts";

/** Codes of the protocol and the transport themselves; the domain's codes come first. */
const apiErrorCodes = [
  "UNKNOWN_TYPE",
  "MESSAGE_TOO_LARGE",
  "RATE_LIMITED",
  "UNAUTHORIZED",
  "ORIGIN_NOT_ALLOWED",
  "INTERNAL",
] as const;

export const errorCodes = [...domainErrorCodes, ...apiErrorCodes] as const;

export type ErrorCode = typeof errorCodes[number];

/** The wire code of each GStreamer-layer error. */
const gstCodes: Record<GstErrorCode, ErrorCode> = {
  UNKNOWN_ELEMENT: "UNKNOWN_ELEMENT",
  UNKNOWN_PROPERTY: "UNKNOWN_PROPERTY",
  INVALID_PROPERTY_VALUE: "INVALID_PROPERTY_VALUE",
};

/** An error of the protocol or the transport themselves (a bad frame, a refused client). */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * What a reply says about `error`, or null for an unexpected one (the caller logs it and
 * answers INTERNAL). A field of a pipeline definition is named as the request carries it: the
 * definition is createPipeline's payload.
 */
export function toWireError(error: unknown): WireError | null {
  if (error instanceof DomainError) {
    const path = error.field && formatPath(["payload", ...error.field]);
    const message = error instanceof FieldError && path ? error.describe(path) : error.message;
    const details = path ? { path, ...error.details } : error.details;
    return { code: error.code, message, ...(details ? { details } : {}) };
  }
  if (error instanceof GstError) {
    return {
      code: gstCodes[error.code],
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    };
  }
  if (error instanceof ApiError) {
    return {
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    };
  }
  return null;
}
