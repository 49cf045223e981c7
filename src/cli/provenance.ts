import { createLogger } from '../log.ts';
import type { ProvenanceResult } from '../repo/provenance.ts';
import { type Reevaluation, reevaluateProvenance, validateRepo } from '../repo/publish.ts';
import { createServices } from '../repo/services.ts';
import { asUsage, type CliContext, codeOf, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { provenanceOptions } from './options.ts';

const USAGE = `usage: reef provenance reverify [REPO] [options]

Checks again every publisher provenance stored as unverified (in REPO, or in
every repository) under this reef's verifier and the provenance policies of
its configuration (REEF_CONFIG): after an upgrade of the verifier (reef on
sigstore-js 5 verifies Rekor v2 bundles that earlier releases could not) or a
change of policy. One that verifies now is marked verified (the earlier reason
is kept as provenance.publisher.reevaluated.previousReason), and reef's signed
record of the publish is re-issued to say so. One that still does not verify
is left as it was. Each package checked is printed and written to the audit
log (action provenance.reevaluate). Verified results are not checked again.

options:
  --dry-run      check and print, change nothing
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

export async function runProvenance(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('provenance', {
    args,
    options: provenanceOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [action, repo, ...extra] = positionals;
  if (action !== 'reverify') {
    throw usageError(
      action === undefined ? 'reef provenance needs an action: reverify' : `unknown action '${action}'`,
    );
  }
  if (extra.length > 0) throw usageError(`unexpected argument '${extra[0]}'`);
  if (repo !== undefined) asUsage(() => validateRepo(repo, 'glibc'));
  const dryRun = values['dry-run'] === true;
  const config = configFromFlags(ctx, values);
  // A maintenance command must not mint an admin token behind the operator's back.
  const services = await createServices(config, createLogger('warn', ctx.stderr), {
    bootstrapAdminToken: false,
  });
  const counts = { verified: 0, unverified: 0, skipped: 0, failed: 0 };
  try {
    await reevaluateProvenance(services, { repo, dryRun }, async (r) => {
      counts[r.outcome]++;
      const target = `${r.pkg.repo}/${r.pkg.libc}/${r.pkg.arch}/${r.pkg.name}-${r.pkg.version}`;
      ctx.stdout.write(`${r.outcome.padEnd(10)} ${target}: ${describe(r)}\n`);
      if (dryRun) return;
      const base = { token: undefined, action: 'provenance.reevaluate', target, remoteAddr: 'cli' };
      if (r.outcome === 'failed') {
        await services.audit.record({ ...base, result: 'rejected', code: codeOf(r.error) });
      } else {
        await services.audit.record({ ...base, result: 'ok', detail: auditDetail(r) });
      }
    });
  } finally {
    await services.close();
  }
  const total = counts.verified + counts.unverified + counts.skipped + counts.failed;
  ctx.stderr.write(
    total === 0
      ? `nothing to check: no unverified provenance${repo ? ` in ${repo}` : ''}\n`
      : `${dryRun ? 'dry run, nothing changed: ' : ''}${counts.verified} verified now, ${counts.unverified} still unverified, ${counts.skipped} skipped, ${counts.failed} failed\n`,
  );
  return counts.failed > 0 ? 1 : 0;
}

function describeSigner(signer: ProvenanceResult['signer']): string {
  if (!signer) return 'no signer';
  if (signer.kind === 'identity') return `${signer.subjectAlternativeName} from ${signer.issuer}`;
  return `${signer.kind} ${signer.key}`;
}

function describe(r: Reevaluation): string {
  switch (r.outcome) {
    case 'verified':
      return `signed by ${describeSigner(r.result.signer)}`;
    case 'failed':
      return `${codeOf(r.error)}: ${r.error instanceof Error ? r.error.message : String(r.error)}`;
    default:
      return r.reason;
  }
}

function auditDetail(r: Exclude<Reevaluation, { outcome: 'failed' }>): Record<string, unknown> {
  if (r.outcome !== 'verified') return { outcome: r.outcome, reason: r.reason };
  return {
    outcome: r.outcome,
    signer: r.result.signer,
    previousReason: r.result.reevaluated?.previousReason,
  };
}
