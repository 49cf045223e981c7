import type { SbomComponent } from '../../sbom/types.ts';
import { type Html, html, visible } from './html.ts';

/** An SBOM component's name, version, purl and licence as four table cells, shown as text. */
export function componentCells(c: Pick<SbomComponent, 'name' | 'version' | 'purl' | 'license'>): Html {
  return html`<td>${visible(c.name)}</td><td>${visible(c.version ?? '')}</td><td>${c.purl ? html`<code>${visible(c.purl)}</code>` : ''}</td><td>${visible(c.license ?? '')}</td>`;
}
