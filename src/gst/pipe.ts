/**
 * An OS pipe between a pipeline's `fdsink` (or `fdsrc`) and JS: GStreamer writes into one end on
 * its streaming thread and blocks when the pipe is full, so the reader sets the pace and nothing is
 * kept in memory. Both ends are close-on-exec (no child process inherits them).
 */
import { lib } from "./native.ts";

const FD_CLOEXEC = 1;

export class OsPipe {
  #read: number | null;
  #write: number | null;

  constructor() {
    const fds = new Int32Array(2);
    if (lib().glib.g_unix_open_pipe(new Uint8Array(fds.buffer), FD_CLOEXEC, null) === 0) {
      throw new Error("g_unix_open_pipe failed (too many open files?)");
    }
    [this.#read, this.#write] = fds;
  }

  /** The descriptor an `fdsrc` reads (it stays ours to close). */
  get readFd(): number {
    if (this.#read === null) throw new Error("The pipe's read end was closed");
    return this.#read;
  }

  /** The descriptor an `fdsink` writes (it stays ours to close). */
  get writeFd(): number {
    if (this.#write === null) throw new Error("The pipe's write end was closed");
    return this.#write;
  }

  /**
   * The read end as a Deno file, which reads on Deno's own threads; the descriptor GLib made is
   * closed, the file holds its own. Closing the file (or cancelling its stream) closes the end.
   */
  async openReader(): Promise<Deno.FsFile> {
    const file = await Deno.open(`/proc/self/fd/${this.readFd}`, { read: true });
    this.closeRead();
    return file;
  }

  /** Closes the read end: a writer blocked on a full pipe then fails at once (EPIPE). */
  closeRead(): void {
    if (this.#read !== null) lib().glib.g_close(this.#read, null);
    this.#read = null;
  }

  /** Closes the write end: the reader sees the end of the file once the pipe is empty. */
  closeWrite(): void {
    if (this.#write !== null) lib().glib.g_close(this.#write, null);
    this.#write = null;
  }

  close(): void {
    this.closeRead();
    this.closeWrite();
  }
}
