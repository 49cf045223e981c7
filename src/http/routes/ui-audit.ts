import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import { diffComponents } from '../../repo/sbom-queries.ts';
import type { Services } from '../../repo/services.ts';
import type { SbomComponent } from '../../sbom/types.ts';
import { type Authenticator, allow } from '../auth.ts';
import { parseQuery } from '../query.ts';
import { componentCells } from '../ui/component-cells.ts';
import { type Html, html, packagePath, visible } from '../ui/html.ts';
import { type PackageParams, readablePackage } from './repo-files.ts';
import { queryComponents, queryLicenses } from './sbom.ts';

/**
 * The auditor's pages of the web interface: which packages contain a
 * component, which declare a licence outside an approved list, and what
 * changed between two versions of a package. Each asks what the JSON API
 * asks (`/api/v1/components`, `/api/v1/licenses`, `…/sbom/diff`) and shows
 * only repositories the caller may read.
 */

export type SendPage = (
  request: FastifyRequest,
  reply: FastifyReply,
  title: string,
  body: Html,
) => Promise<unknown>;

/** Rows per page: a person reads a page; a script pages the API. */
const PAGE_ROWS = 100;

/** An empty form field is no field. */
const field = (max: number) =>
  z
    .string()
    .max(max)
    .optional()
    .transform((v) => (v?.trim() ? v.trim() : undefined));

export const uiComponentQuery = z.object({
  name: field(500),
  purl: field(2000),
  version: field(200),
  after: field(4000),
});

export const uiLicenseQuery = z.object({
  expression: field(500),
  mode: z.enum(['satisfies', 'conflicts']).default('conflicts'),
  after: field(4000),
});

export const uiDiffQuery = z.object({ against: field(200) });

export function registerAuditPages(
  app: FastifyInstance,
  services: Services,
  auth: Authenticator,
  send: SendPage,
): void {
  app.get('/ui/components', { config: { access: allow.optional } }, async (request, reply) => {
    const q = parseQuery(uiComponentQuery, request.query);
    const form = html`<h1>Components</h1>
<p>Which packages contain a component, by name or by package URL, in a range of versions if you give one
(<code>&lt;3.0.8</code>, <code>&gt;=1.2 &lt;2</code>): apk rules for apk components, semantic versions for npm, cargo, Go and the like.</p>
<form action="/ui/components" method="get" class="query">
<label for="c-name">Name</label> <input id="c-name" name="name" value="${q.name ?? ''}" placeholder="openssl">
<label for="c-purl">or purl</label> <input id="c-purl" name="purl" value="${q.purl ?? ''}" placeholder="pkg:apk/wolfi/openssl">
<label for="c-version">Versions</label> <input id="c-version" name="version" value="${q.version ?? ''}" placeholder="&lt;3.0.8">
<button type="submit">Find</button>
</form>`;
    if (q.name === undefined && q.purl === undefined) return send(request, reply, 'Components', form);
    const answer = await answerOrProblem(reply, async () => {
      if (q.name !== undefined && q.purl !== undefined) {
        throw new AppError('BAD_REQUEST', 'give a name or a purl, not both');
      }
      return queryComponents(services, await auth.readableRepos(request), { ...q, limit: PAGE_ROWS });
    });
    if ('problem' in answer) return send(request, reply, 'Components', html`${form}${answer.problem}`);
    const { matches, next } = answer.value;
    const rows = matches.map(
      (m) =>
        html`<tr><td><a href="${packagePath(m.package)}">${m.package.name}</a></td><td>${m.package.version}</td><td>${m.package.repo}/${m.package.libc}/${m.package.arch}</td>${componentCells(m.component)}</tr>`,
    );
    return send(
      request,
      reply,
      `Components: ${q.name ?? q.purl}`,
      html`${form}
${
  rows.length > 0
    ? html`<div class="table-wrap"><table><thead><tr><th>package</th><th>version</th><th>repository</th><th>component</th><th>component version</th><th>purl</th><th>licence</th></tr></thead>
<tbody>${rows}</tbody></table></div>`
    : html`<p class="muted">No package you may read contains it.</p>`
}
${nextLink('/ui/components', { name: q.name, purl: q.purl, version: q.version }, next)}`,
    );
  });

  app.get('/ui/licenses', { config: { access: allow.optional } }, async (request, reply) => {
    const q = parseQuery(uiLicenseQuery, request.query);
    const form = html`<h1>Licences</h1>
<p>The packages whose declared licence your approved list does not allow (or does). Give the list as an SPDX expression
joined with OR, e.g. <code>MIT OR Apache-2.0 OR BSD-3-Clause</code>.</p>
<form action="/ui/licenses" method="get" class="query">
<label for="l-expression">Approved</label> <input id="l-expression" name="expression" value="${q.expression ?? ''}" placeholder="MIT OR Apache-2.0">
<label for="l-mode">Show</label> <select id="l-mode" name="mode">
<option value="conflicts"${q.mode === 'conflicts' ? ' selected' : ''}>packages it does not allow</option>
<option value="satisfies"${q.mode === 'satisfies' ? ' selected' : ''}>packages it allows</option>
</select>
<button type="submit">Check</button>
</form>`;
    if (q.expression === undefined) return send(request, reply, 'Licences', form);
    const expression = q.expression;
    const answer = await answerOrProblem(reply, async () =>
      queryLicenses(services, await auth.readableRepos(request), { ...q, expression, limit: PAGE_ROWS }),
    );
    if ('problem' in answer) return send(request, reply, 'Licences', html`${form}${answer.problem}`);
    const { packages, next } = answer.value;
    const rows = packages.map(
      (p) =>
        html`<tr><td><a href="${packagePath(p)}">${p.name}</a></td><td>${p.version}</td><td>${p.repo}/${p.libc}/${p.arch}</td><td>${p.license || html`<span class="muted">none declared</span>`}</td></tr>`,
    );
    return send(
      request,
      reply,
      `Licences: ${expression}`,
      html`${form}
${
  rows.length > 0
    ? html`<div class="table-wrap"><table><thead><tr><th>package</th><th>version</th><th>repository</th><th>licence</th></tr></thead>
<tbody>${rows}</tbody></table></div>`
    : html`<p class="muted">No package you may read.</p>`
}
${nextLink('/ui/licenses', { expression, mode: q.mode }, next)}`,
    );
  });

  app.get<{ Params: PackageParams }>(
    '/ui/packages/:repo/:libc/:arch/:name/:version/diff',
    { config: { access: allow.read() } },
    async (request, reply) => {
      const { key, pkg } = await readablePackage(services, request, request.params);
      const q = parseQuery(uiDiffQuery, request.query);
      const versions = (await services.store.versionsOf(key, pkg.name)).filter(
        (v) => v.version !== pkg.version,
      );
      const title = `${pkg.name} ${pkg.version}: what changed`;
      const heading = html`<h1><a href="${packagePath(pkg, key.arch)}">${pkg.name} ${pkg.version}</a>: what changed</h1>
<form method="get" class="query">
<label for="d-against">Compared with</label> <select id="d-against" name="against">
${versions.map((v) => html`<option value="${v.version}"${v.version === q.against ? ' selected' : ''}>${v.version}</option>`)}
</select>
<button type="submit">Compare</button>
</form>`;
      if (q.against === undefined) {
        return send(
          request,
          reply,
          title,
          html`${heading}${versions.length === 0 ? html`<p class="muted">This is the only version.</p>` : ''}`,
        );
      }
      const other = (await readablePackage(services, request, request.params, q.against)).pkg;
      const diff = diffComponents(
        await services.sboms.componentsOf(other.id),
        await services.sboms.componentsOf(pkg.id),
      );
      const list = (components: SbomComponent[]) =>
        components.length > 0
          ? html`<div class="table-wrap"><table><thead><tr><th>component</th><th>version</th><th>purl</th><th>licence</th></tr></thead><tbody>
${components.map((c) => html`<tr>${componentCells(c)}</tr>`)}
</tbody></table></div>`
          : html`<p class="muted">none</p>`;
      return send(
        request,
        reply,
        title,
        html`${heading}
<p>From <a href="${packagePath(other, key.arch)}">${other.version}</a> to ${pkg.version}, by their SBOMs.</p>
<h2>Changed <span class="muted">${diff.changed.length}</span></h2>
${
  diff.changed.length > 0
    ? html`<div class="table-wrap"><table><thead><tr><th>component</th><th>${other.version}</th><th>${pkg.version}</th><th>licence</th></tr></thead><tbody>
${diff.changed.map(
  ({ before, after }) =>
    html`<tr><td>${visible(after.name)}</td><td>${visible(before.version ?? '')}</td><td>${visible(after.version ?? '')}</td><td>${before.license === after.license ? (after.license ?? '') : `${before.license ?? 'none'} → ${after.license ?? 'none'}`}</td></tr>`,
)}
</tbody></table></div>`
    : html`<p class="muted">none</p>`
}
<h2>Added <span class="muted">${diff.added.length}</span></h2>${list(diff.added)}
<h2>Removed <span class="muted">${diff.removed.length}</span></h2>${list(diff.removed)}`,
      );
    },
  );
}

/**
 * The query's answer, or the reason it has none shown under the form with a
 * 4xx (a malformed range, licence expression or cursor is the user's to fix).
 */
async function answerOrProblem<T>(
  reply: FastifyReply,
  ask: () => T | Promise<T>,
): Promise<{ value: T } | { problem: Html }> {
  try {
    return { value: await ask() };
  } catch (err) {
    if (!(err instanceof AppError) || err.kind !== 'invalid') throw err;
    reply.code(400);
    return { problem: html`<p class="bad">${err.message}</p>` };
  }
}

/** A link to the next page of the same query, when there is one. */
function nextLink(path: string, params: Record<string, string | undefined>, next: string | null): Html {
  if (!next) return html``;
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) query.set(k, v);
  query.set('after', next);
  return html`<p><a href="${path}?${query.toString()}" rel="next">Next ${PAGE_ROWS}</a></p>`;
}
