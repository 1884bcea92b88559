/**
 * The domain's typed errors: a stable code and a message a person can act on. The API layer
 * (src/api/errors.ts) turns them into replies in one place; nothing here knows the wire.
 */

export const domainErrorCodes = [
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
  "LIMIT_REACHED",
  "STORAGE_FAILED",
  "STATE_CHANGE_FAILED",
  "INVALID_STATE",
  "SEEK_FAILED",
  "RECORDING_NOT_FOUND",
  "NODE_UNAVAILABLE",
] as const;

export type DomainErrorCode = typeof domainErrorCodes[number];

/** Where a value sits in a pipeline definition, e.g. ["pipeline", "links", 1, "from"]. */
export type Field = readonly PropertyKey[];

/** A field as text: `pipeline.links[1].from`. */
export function formatPath(path: Field): string {
  return path.reduce<string>(
    (text, key) =>
      typeof key === "number" ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key),
    "",
  );
}

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** The field of the definition at fault, when one is. */
    readonly field?: Field,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

/**
 * An error whose message names the field at fault. `describe` writes the message for a given
 * rendering of the field: here the field as the definition has it; on the wire, as the request
 * carries it (src/api/errors.ts).
 */
export class FieldError extends DomainError {
  constructor(
    code: DomainErrorCode,
    readonly describe: (where: string) => string,
    field: Field,
    details?: Record<string, unknown>,
  ) {
    super(code, describe(formatPath(field)), details, field);
  }
}

/** The text of any error, for logs and stored reasons. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
