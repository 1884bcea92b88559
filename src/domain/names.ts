/** The naming rules of pipelines, elements and RTSP paths: each written once, with its words. */
import { DomainError } from "./errors.ts";

export const idPattern = /^[A-Za-z0-9._-]{1,128}$/;
export const ID_RULE = "1 to 128 characters of letters, digits, '.', '_' and '-'";

/** Element names and RTSP paths (a push's name is its path). */
export const namePattern = /^[A-Za-z0-9._-]{1,64}$/;
export const NAME_RULE = "1 to 64 characters of letters, digits, '.', '_' and '-'";

/** An element given no name is called after its type and position, as gst-launch does. */
export function defaultElementName(type: string, index: number): string {
  return `${type}${index}`;
}

export function requireValidId(id: string): void {
  if (!idPattern.test(id)) {
    throw new DomainError(
      "INVALID_ID",
      `Invalid pipeline id ${JSON.stringify(id)}: ids are ${ID_RULE}`,
      { id },
    );
  }
}
