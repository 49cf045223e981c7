import { createHash } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { latestEvent } from '../../advisory/document.ts';
import { parseDependency } from '../../apk/dependency.ts';
import { AppError } from '../../errors.ts';
import { type PackageRelations, resolveRelations } from '../../repo/dependencies.ts';
import { ensureFileList } from '../../repo/file-list.ts';
import type { Services } from '../../repo/services.ts';
import type { Match, NotEvaluated } from '../../repo/vulnerabilities.ts';
import type { StoredPackage } from '../../store/package-store.ts';
import { type Authenticator, allow, UI_COOKIE } from '../auth.ts';
import { baseUrl } from '../base-url.ts';
import { errorResponse } from '../errors.ts';
import { parseQuery } from '../query.ts';
import { componentCells } from '../ui/component-cells.ts';
import { renderFileList } from '../ui/file-list.ts';
import { externalLink, formatBytes, type Html, html, packagePath, visible } from '../ui/html.ts';
import { PAGE_HEADERS, page, STYLESHEET } from '../ui/layout.ts';
import { type PackageParams, readablePackage } from './repo-files.ts';
import { registerAuditPages } from './ui-audit.ts';

/**
 * The web interface (README, "Web interface"): the home page, search and the
 * package page, rendered on the server as plain HTML with a strict
 * Content-Security-Policy (no script at all), showing only what the caller
 * may read. It writes nothing.
 */

export const searchQuery = z.object({
  q: z.string().max(200).default(''),
  repo: z.string().max(64).optional(),
  libc: z.enum(['glibc', 'musl']).optional(),
  arch: z.string().max(32).optional(),
});

const STYLESHEET_ETAG = `"${createHash('sha256').update(STYLESHEET).digest('hex')}"`;
const SEARCH_LIMIT = 100;

export function registerUiRoutes(app: FastifyInstance, services: Services, auth: Authenticator): void {
  // A browser at the root goes to the interface; apk and scripts never ask for `/`.
  app.get('/', { config: { access: allow.public } }, async (request, reply) => {
    if (/text\/html/.test(request.headers.accept ?? '')) return reply.redirect('/ui/', 302);
    throw new AppError('NOT_FOUND', 'nothing at /: the web interface is at /ui/, the API at /api/v1/');
  });

  app.register(async (ui) => {
    await ui.register(fastifyCookie);
    // A cookie whose token was revoked or has expired signs out, rather than locking out every page.
    ui.addHook('preHandler', async (request, reply) => {
      const cookies = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies;
      if (!cookies?.[UI_COOKIE] || request.headers.authorization) return;
      try {
        await auth.identify(request);
      } catch (err) {
        if (!(err instanceof AppError) || err.code !== 'AUTH_INVALID') throw err;
        cookies[UI_COOKIE] = undefined;
        reply.clearCookie(UI_COOKIE, { path: '/ui/' });
      }
    });
    // The sign-in form's body; nothing else of the interface takes one.
    await ui.register(fastifyFormbody, { bodyLimit: 4096 });
    // A person gets a page saying what went wrong, with the same status and code the API gives.
    ui.setErrorHandler((err, request, reply) => {
      const { status, body } = errorResponse(err as Error, request, reply);
      // Basic auth is for apk and scripts; a browser would pop up its own password dialog.
      reply.removeHeader('www-authenticate');
      const title =
        status === 404 ? 'Not found' : status >= 500 ? 'Something went wrong' : 'Cannot show this';
      reply
        .code(status)
        .headers(PAGE_HEADERS)
        .send(
          page(
            title,
            html`<h1>${title}</h1><p>${body.message}</p><p class="muted">${status} <code>${body.code}</code></p>`,
          ).text,
        );
    });
    registerPages(ui, services, auth);
  });
}

/** How long a sign-in lasts: a working day. */
const SIGN_IN_SECONDS = 8 * 3600;

function registerPages(app: FastifyInstance, services: Services, auth: Authenticator): void {
  const { store } = services;
  /**
   * Who the page is for: the signed-in token's name, if any. Shown, not
   * checked: pages of any rule name the caller, identified (and invalid
   * credentials refused) as the page is rendered.
   */
  const viewer = async (request: FastifyRequest): Promise<string | undefined> =>
    (await auth.identify(request))?.name;
  const send = async (request: FastifyRequest, reply: FastifyReply, title: string, body: Html, query = '') =>
    reply.headers(PAGE_HEADERS).send(page(title, body, query, await viewer(request)).text);

  const signInPage = (request: FastifyRequest, reply: FastifyReply, problem?: string) =>
    send(
      request,
      reply,
      'Sign in',
      html`<h1>Sign in</h1>
${problem ? html`<p class="bad">${problem}</p>` : ''}
<p>Paste a token that may read the private repositories you want to see. It is kept in a cookie that
scripts cannot read and other sites do not send, for ${SIGN_IN_SECONDS / 3600} hours.</p>
<form action="/ui/sign-in" method="post">
<label for="token">Token</label>
<input type="password" id="token" name="token" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>`,
    );

  registerAuditPages(app, services, auth, send);

  app.get('/ui/sign-in', { config: { access: allow.public } }, async (request, reply) =>
    signInPage(request, reply),
  );

  // Public: the token to check is in the form, and checked below (failures counted as any).
  app.post('/ui/sign-in', { config: { access: allow.public } }, async (request, reply) => {
    checkSameOrigin(request, services);
    // The cookie is Secure: browsers keep it only over https (and on this machine's own address).
    if (request.protocol !== 'https' && !/^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(request.hostname)) {
      reply.code(400);
      return signInPage(
        request,
        reply,
        'Signing in needs https: serve reef behind TLS (REEF_PUBLIC_URL https://…).',
      );
    }
    const token = String((request.body as { token?: unknown } | undefined)?.token ?? '').trim();
    try {
      if (!token) throw new AppError('AUTH_INVALID', 'give a token');
      await auth.verify(request, token);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'AUTH_INVALID') throw err;
      reply.code(401);
      return signInPage(request, reply, 'That token is not valid (unknown, revoked or expired).');
    }
    reply.setCookie(UI_COOKIE, token, {
      path: '/ui/',
      httpOnly: true,
      sameSite: 'strict',
      secure: true,
      maxAge: SIGN_IN_SECONDS,
    });
    return reply.redirect('/ui/', 303);
  });

  app.post('/ui/sign-out', { config: { access: allow.public } }, async (request, reply) => {
    checkSameOrigin(request, services);
    reply.clearCookie(UI_COOKIE, { path: '/ui/' });
    return reply.redirect('/ui/', 303);
  });

  app.get('/ui/static/reef.css', { config: { access: allow.public } }, async (request, reply) => {
    reply.header('content-type', 'text/css; charset=utf-8').header('etag', STYLESHEET_ETAG);
    reply.header('cache-control', 'public, no-cache');
    if (request.headers['if-none-match'] === STYLESHEET_ETAG) return reply.code(304).send();
    return STYLESHEET;
  });

  app.get('/ui/', { config: { access: allow.optional } }, async (request, reply) => {
    const readable = new Set(await auth.readableRepos(request));
    const base = baseUrl(request, services);
    const indexes = (await store.listIndexes()).filter((i) => readable.has(i.repo));
    const keys = services.signingKeys.map((k) => k.keyName);
    const sections = [...new Set(indexes.map((i) => `${i.repo}\n${i.libc}`))].map((pair) => {
      const [repo, libc] = pair.split('\n') as [string, string];
      const arches = indexes.filter((i) => i.repo === repo && i.libc === libc);
      const total = arches.reduce((n, i) => n + (i.packageCount ?? 0), 0);
      const url = `${base}/${repo}/${libc}`;
      return html`<section>
<h2>${repo} / ${libc} <span class="muted">${total} packages</span></h2>
<div class="table-wrap"><table><thead><tr><th>arch</th><th>packages</th></tr></thead><tbody>
${arches.map(
  (i) =>
    html`<tr><td><a href="/ui/search?repo=${encodeURIComponent(repo)}&amp;libc=${libc}&amp;arch=${encodeURIComponent(i.arch)}">${i.arch}</a></td><td>${i.packageCount ?? 0}</td></tr>`,
)}
</tbody></table></div>
<p>Use it with apk:</p>
<pre>${keys.map((k) => `wget -O /etc/apk/keys/${k} ${base}/keys/${k}\n`)}echo "${url}" &gt;&gt; /etc/apk/repositories
apk update</pre>
<p>With apko:</p>
<pre>contents:
  keyring:
${keys.map((k) => `    - ${base}/keys/${k}\n`)}  repositories:
    - ${url}</pre>
</section>`;
    });
    return send(
      request,
      reply,
      'Repositories',
      html`<h1>Repositories</h1>
${sections.length > 0 ? sections : html`<p class="muted">No repository you may read has packages yet.</p>`}`,
    );
  });

  app.get('/ui/search', { config: { access: allow.optional } }, async (request, reply) => {
    const q = parseQuery(searchQuery, request.query);
    const text = q.q.trim();
    const repos = (await auth.readableRepos(request)).filter((r) => q.repo === undefined || r === q.repo);
    // The first page only; `next` says there is more (or that the search stopped reading early).
    const found =
      text || q.repo
        ? await store.searchPage(text, repos, { libc: q.libc, arch: q.arch }, { limit: SEARCH_LIMIT })
        : { packages: [], next: undefined };
    const hits = found.packages;
    const rows = hits.map(
      (p) =>
        html`<tr><td><a href="${packagePath(p)}">${p.name}</a></td><td>${p.version}</td><td>${p.repo}/${p.libc}/${p.arch}</td><td>${p.description}</td></tr>`,
    );
    return send(
      request,
      reply,
      text ? `Search: ${text}` : 'Search',
      html`<h1>${text ? html`Packages matching <code>${text}</code>` : 'Packages'}</h1>
${
  rows.length > 0
    ? html`<div class="table-wrap"><table><thead><tr><th>name</th><th>version</th><th>repository</th><th>description</th></tr></thead>
<tbody>${rows}</tbody></table></div>
${found.next ? html`<p class="muted">The first ${hits.length}; narrow the search.</p>` : ''}`
    : html`<p class="muted">${found.next ? 'Nothing among the first matches read; narrow the search.' : text || q.repo ? 'Nothing matches.' : 'Search by name, description, or what a package provides (so:, cmd:, pc:).'}</p>`
}`,
      text,
    );
  });

  app.get<{ Params: PackageParams }>(
    '/ui/packages/:repo/:libc/:arch/:name/:version',
    { config: { access: allow.read() } },
    async (request, reply) => {
      const { key, pkg } = await readablePackage(services, request, request.params);
      await ensureFileList(services, pkg).catch((err) => request.log.warn({ err }, 'file list not read'));
      return send(
        request,
        reply,
        `${pkg.name} ${pkg.version}`,
        await packagePage(services, request, pkg, key.arch),
      );
    },
  );
}

/**
 * SECURITY: a form of another site must not sign someone in or out (login
 * CSRF): the browser's Origin must be this server's.
 */
function checkSameOrigin(request: FastifyRequest, services: Services): void {
  const origin = request.headers.origin;
  const own = new Set([`${request.protocol}://${request.host}`, new URL(baseUrl(request, services)).origin]);
  if (!origin || !own.has(origin)) {
    throw new AppError(
      'AUTH_FORBIDDEN',
      "sign in from reef's own sign-in page (the request came from another origin)",
    );
  }
}

/** A provided name, linked to the search for it. */
function nameLink(token: string): Html {
  const { name } = parseDependency(token);
  return html`<a href="/ui/search?q=${encodeURIComponent(name)}"><code>${token}</code></a>`;
}

async function packagePage(
  services: Services,
  request: FastifyRequest,
  pkg: StoredPackage,
  arch: string,
): Promise<Html> {
  const base = baseUrl(request, services);
  const file = `${base}/${pkg.repo}/${pkg.libc}/${arch}/${pkg.filename}`;
  const fields: Array<[string, Html | string]> = [
    ['description', pkg.description],
    ['version', pkg.version],
    ['architecture', pkg.arch],
    ['repository', `${pkg.repo} / ${pkg.libc}`],
    ['origin', pkg.origin],
    ['licence', pkg.license],
    ['project', externalLink(pkg.url)],
    ['maintainer', pkg.maintainer],
    ['size', `${formatBytes(pkg.size)} (installed ${formatBytes(pkg.installedSize)})`],
    ['built', pkg.builddate ? new Date(pkg.builddate * 1000).toISOString() : ''],
    ['source commit', pkg.commit],
    ['uploaded', new Date(pkg.uploadedAt).toISOString()],
    ['checksum (C:)', html`<code>${pkg.checksum}</code>`],
    ['SHA-256', html`<code>${pkg.sha256}</code>`],
    ['download', html`<a href="${file}">${pkg.filename}</a>`],
  ];
  const list = (items: string[]) =>
    items.length > 0
      ? html`<ul>${items.map((d) => html`<li>${nameLink(d)}</li>`)}</ul>`
      : html`<p class="muted">none</p>`;

  const components = await services.sboms.componentsOf(pkg.id);
  const provenance = await services.store.getProvenance(pkg.id);
  const result = provenance?.result as
    | {
        verified?: boolean;
        reason?: string;
        signer?: Record<string, string>;
        predicate?: Record<string, string>;
      }
    | undefined;
  const advisories = await services.advisories.documentOf(pkg.repo, pkg.origin || pkg.name);
  const key = { repo: pkg.repo, libc: pkg.libc, arch };
  const versions = await services.store.versionsOf(key, pkg.name);
  const relations = await resolveRelations(services.store, key, pkg);

  return html`<h1>${pkg.name} <span class="muted">${pkg.version}</span></h1>
<dl class="fields">${fields.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
<details><summary>Every <code>.PKGINFO</code> line <span class="muted">(${pkg.pkginfo.length})</span></summary>
<div class="table-wrap"><table><thead><tr><th>key</th><th>value</th></tr></thead><tbody>
${pkg.pkginfo.map(([k, v]) => html`<tr><td><code>${visible(k)}</code></td><td>${visible(v)}</td></tr>`)}
</tbody></table></div></details>
${relationsSection(relations, arch)}
<h2>Provides</h2>${list(pkg.provides)}
${await renderFileList(services.fileLists, pkg, base)}
<h2>Versions</h2>
<div class="table-wrap"><table><thead><tr><th>version</th><th>arch</th><th>uploaded</th><th>SBOM</th></tr></thead><tbody>
${versions.map(
  (v) =>
    html`<tr><td><a href="${packagePath(v, arch)}">${v.version}</a></td><td>${v.arch}</td><td>${new Date(v.uploadedAt).toISOString()}</td><td>${
      v.id === pkg.id
        ? html`<span class="muted">this version</span>`
        : html`<a href="${packagePath(pkg, arch)}/diff?against=${encodeURIComponent(v.version)}">compare</a>`
    }</td></tr>`,
)}
</tbody></table></div>
<h2>SBOM <span class="muted">${components.length} components</span></h2>
<p><a href="${file}.spdx.json">SPDX 2.3</a> · <a href="${file}.cdx.json">CycloneDX 1.6</a></p>
<div class="table-wrap"><table><thead><tr><th>component</th><th>version</th><th>purl</th><th>licence</th></tr></thead><tbody>
${components.slice(0, 500).map((c) => html`<tr>${componentCells(c)}</tr>`)}
</tbody></table></div>
${components.length > 500 ? html`<p class="muted">The first 500; the SBOM has them all.</p>` : ''}
<h2>Provenance</h2>
${
  provenance
    ? html`<p>Publisher provenance: ${
        result?.verified
          ? html`<span class="ok">verified</span>, signed by <code>${result.signer?.subjectAlternativeName ?? result.signer?.key ?? ''}</code>`
          : html`<span class="bad">not verified</span>: ${result?.reason ?? ''}`
      }</p>
<p>Builder: ${result?.predicate?.builderId ?? 'unknown'}; source: ${externalLink(result?.predicate?.sourceRepository)} ${result?.predicate?.sourceCommit ?? ''}</p>`
    : html`<p class="muted">The publisher sent no provenance.</p>`
}
<p>reef's signed record of this publish: <a href="${file}.publish.json">${pkg.filename}.publish.json</a>. Check it with
<code>npx reef verify ${file}</code>.</p>
<h2>Advisories</h2>
${
  advisories && advisories.length > 0
    ? html`<div class="table-wrap"><table><thead><tr><th>advisory</th><th>aliases</th><th>state</th></tr></thead><tbody>
${advisories.map((a) => {
  const latest = latestEvent(a);
  const fixed = latest.type === 'fixed' ? ` in ${latest.data['fixed-version']}` : '';
  return html`<tr><td>${a.id}</td><td>${(a.aliases ?? []).join(', ')}</td><td>${latest.type}${fixed}</td></tr>`;
})}
</tbody></table></div>`
    : html`<p class="muted">No advisory concerns ${pkg.origin || pkg.name}.</p>`
}
<h2>Vulnerabilities</h2>
${vulnerabilityTable(await services.vulnerabilities.forPackage(pkg))}`;
}

/** Dependencies linked to the packages that satisfy them, and the packages that need this one. */
function relationsSection(relations: PackageRelations, arch: string): Html {
  const link = (p: StoredPackage) =>
    html`<a href="${packagePath(p, arch)}">${p.name}</a> <span class="muted">${p.version}</span>`;
  const depends = relations.depends.map((d) => {
    if (d.conflict) return html`<li><code>${d.token}</code>: conflicts</li>`;
    if (d.providers.length === 0) {
      return html`<li><code>${d.token}</code> <span class="muted">(not in this repository)</span></li>`;
    }
    const byName = d.providers.find((p) => p.name === d.name);
    if (byName && d.providers.length === 1) {
      return html`<li>${link(byName)}${d.token === d.name ? '' : html` <code>${d.token}</code>`}</li>`;
    }
    return html`<li><code>${d.token}</code>: provided by ${d.providers.map((p, i) => html`${i > 0 ? ', ' : ''}${link(p)}`)}</li>`;
  });
  const dependents = relations.dependents;
  return html`<h2>Depends on</h2>
${depends.length > 0 ? html`<ul>${depends}</ul>` : html`<p class="muted">none</p>`}
<h2>Required by <span class="muted">${dependents.length}${relations.dependentsTruncated ? '+' : ''} package${dependents.length === 1 && !relations.dependentsTruncated ? '' : 's'}</span></h2>
${
  dependents.length > 0
    ? html`<ul class="columns">${dependents.map((p) => html`<li>${link(p)}</li>`)}</ul>`
    : html`<p class="muted">No package in this repository depends on it.</p>`
}`;
}

/** What the uploaded OSV records say of this package and its components (reef's advisories applied). */
function vulnerabilityTable({
  matches,
  notEvaluated,
}: {
  matches: Match[];
  notEvaluated: NotEvaluated[];
}): Html {
  if (matches.length + notEvaluated.length === 0) {
    return html`<p class="muted">No uploaded vulnerability record matches this package or its components.</p>`;
  }
  const stateClass = (state: string) =>
    state === 'affected' ? 'bad' : state === 'under_investigation' ? '' : 'ok';
  return html`<div class="table-wrap"><table><thead><tr><th>record</th><th>component</th><th>state</th><th>why</th></tr></thead><tbody>
${matches.map(
  (m) =>
    html`<tr><td>${m.record}</td><td>${m.component ? visible(`${m.component.name} ${m.component.version ?? ''}`) : 'this package'}</td><td><span class="${stateClass(m.state)}">${m.state.replace('_', ' ')}</span></td><td>${
      m.advisory
        ? `advisory ${m.advisory.id}: ${m.advisory.event}${m.advisory.fixedVersion ? ` in ${m.advisory.fixedVersion}` : ''}`
        : m.range
          ? `in range ${JSON.stringify(m.range.events)}`
          : 'version listed'
    }</td></tr>`,
)}
${notEvaluated.map(
  (n) =>
    html`<tr><td>${n.record}</td><td>${n.component ? visible(`${n.component.name} ${n.component.version ?? ''}`) : 'this package'}</td><td>not evaluated</td><td>${n.reason}</td></tr>`,
)}
</tbody></table></div>`;
}
