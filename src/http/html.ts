/** Small HTML helpers for the service's own pages (verify, errors). */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes any value's text for HTML element content and quoted attribute values (`& < > " '`); null → ''. */
export function escapeHtml(value: unknown): string {
  // Any value by design: what String() makes of it is the text escaped.
  // eslint-disable-next-line @typescript-eslint/no-base-to-string
  return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** A complete small page: title, body HTML (already escaped), optional meta refresh. Works without JavaScript. */
export function page(
  title: string,
  bodyHtml: string,
  opts: { refresh?: { seconds: number; url: string } } = {},
): string {
  const refresh = opts.refresh
    ? `<meta http-equiv="refresh" content="${opts.refresh.seconds};url=${escapeHtml(opts.refresh.url)}">`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">${refresh}
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:32rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002;text-align:center}
h1{font-size:1.4rem}.btn{display:inline-block;padding:.6rem 1.2rem;border-radius:8px;background:#2a7ae2;color:#fff;text-decoration:none}
.count{color:#667}</style></head>
<body><main><h1>${escapeHtml(title)}</h1>${bodyHtml}</main></body></html>`;
}
