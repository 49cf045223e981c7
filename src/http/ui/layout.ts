import { type Html, html, raw } from './html.ts';

/** The stylesheet, served from /ui/static/reef.css: light and dark themes, readable on a phone. */
export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1d232b; --bg: #fdfdfc; --muted: #5b6573; --line: #d9dde3;
  --accent: #0a6b7c; --ok: #196c2e; --bad: #a1260d; --code: #f2f4f6; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ed; --bg: #14181d; --muted: #9aa5b1; --line: #2c333b;
  --accent: #5cc8d9; --ok: #6fd08a; --bad: #ff8a70; --code: #1e242b; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
header a.home { font-weight: 700; text-decoration: none; color: var(--fg); }
header form { display: flex; gap: .5rem; flex: 1 1 16rem; min-width: 0; }
header form.signed-in { flex: 0 0 auto; align-items: center; }
header nav { display: flex; gap: 1rem; }
form.query { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 1rem 0; }
form.query input, form.query select { padding: .4rem .6rem; font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; min-width: 0; }
main form input[type=password] { padding: .4rem .6rem; font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; margin: 0 .5rem; }
header input[type=search] { flex: 1; min-width: 0; padding: .4rem .6rem; font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; }
button { padding: .4rem .8rem; font: inherit; color: inherit; background: var(--code); border: 1px solid var(--line); border-radius: 4px; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; overflow-wrap: anywhere; }
a { color: var(--accent); }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); overflow-wrap: break-word; }
th { white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
dl.fields { display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: .25rem 1rem; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; background: var(--code); border-radius: 3px; }
code { padding: .05rem .3rem; }
pre { padding: .75rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.table-wrap { overflow-x: auto; }
ul.columns { columns: 16rem; }
details { margin: 1rem 0; }
summary { cursor: pointer; }
`;

/** The whole page around `content`; `query` fills the search box. */
export function page(title: string, content: Html, query = '', viewer?: string): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · reef</title>
<link rel="stylesheet" href="/ui/static/reef.css">
</head>
<body>
<header>
<a class="home" href="/ui/">reef</a>
<nav aria-label="Audit"><a href="/ui/components">Components</a> <a href="/ui/licenses">Licences</a></nav>
<form action="/ui/search" method="get" role="search">
<label for="q" class="muted">Search</label>
<input type="search" id="q" name="q" value="${query}" placeholder="package, so:libc.so.6, cmd:curl">
<button type="submit">Search</button>
</form>
${
  viewer === undefined
    ? html`<a href="/ui/sign-in">Sign in</a>`
    : html`<form action="/ui/sign-out" method="post" class="signed-in"><span class="muted">${viewer}</span> <button type="submit">Sign out</button></form>`
}
</header>
<main>
${content}
</main>
</body>
</html>
`;
}

/** Headers of every page: nothing loads from elsewhere, no script runs, no site frames it. */
export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the sign-in form's POST.
  'referrer-policy': 'same-origin',
  'cache-control': 'private, no-cache',
};

export const NOTHING = raw('');
