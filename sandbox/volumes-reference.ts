// The original whole-day volumes query (GROUP BY ip in SQL), kept as the reference the cached,
// row-by-row reading of src/netacct/volumes.ts is tested against. Test-only: not in the product.
import type { DatabaseConfig } from '../src/config/config.js';
import { q } from '../src/netacct/volumes-sql.js';

/** SQL expression of the counted bytes of one direction, negative and NULL rows counted apart. */
function bytesExpr(d: DatabaseConfig, dir: 'down' | 'up'): { sum: string; bad: string } {
  const main = q(dir === 'down' ? d.columns.down : d.columns.up);
  const suffix = dir === 'down' ? 'input' : 'output';
  const excluded = d.exclude.map((k) => q(`${k}_${suffix}`));
  const cols = [main, ...excluded];
  const bad = cols.map((c) => `${c} IS NULL OR ${c} < 0`).join(' OR ');
  const value = [main, ...excluded.map((c) => `- ${c}`)].join(' ');
  return {
    sum: `CAST(SUM(CASE WHEN ${bad} THEN 0 ELSE GREATEST(${value}, 0) END) AS SIGNED)`,
    bad: `CAST(SUM(CASE WHEN ${bad} THEN 1 ELSE 0 END) AS SIGNED)`,
  };
}

export function volumesQuery(d: DatabaseConfig, table: string): string {
  const down = bytesExpr(d, 'down');
  const up = bytesExpr(d, 'up');
  return (
    `SELECT ${q(d.columns.ip)}, ${down.sum}, ${up.sum}, ${down.bad}, ${up.bad} ` +
    `FROM ${q(table)} WHERE ${q(d.columns.time)} >= FROM_UNIXTIME(?) GROUP BY ${q(d.columns.ip)}`
  );
}
