/**
 * The largest SBOM document reef accepts, sent or embedded by melange: one
 * number, because a limit on what is buffered that is larger than what is
 * accepted only lets a package make reef hold bytes it will refuse anyway.
 * reef's own generated document has no such limit (it describes any package
 * reef accepts, and is streamed to its blob, never held).
 */
export const MAX_SBOM_BYTES = 16 * 2 ** 20;
