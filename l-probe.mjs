import { startSlapd } from '/work/main/build/src/sandbox/slapd.js';
import { Client } from 'ldapts';
const s = await startSlapd({ sizeLimit: 50 });
try {
  for (const mode of ['seq', 'par']) {
    const c = new Client({ url: s.url, timeout: 5000 });
    const f = (b) => c.search(b, { scope: 'sub', filter: '(objectClass=*)', paged: { pageSize: 20 }, timeLimit: 5 }).then(r => r.searchEntries.length);
    try {
      if (mode === 'seq') { console.log(mode, await f('ou=people,dc=maisel,dc=enst-bretagne,dc=fr'), await f('ou=machines,dc=resel,dc=enst-bretagne,dc=fr')); }
      else console.log(mode, await Promise.all([f('ou=people,dc=maisel,dc=enst-bretagne,dc=fr'), f('ou=machines,dc=resel,dc=enst-bretagne,dc=fr')]));
    } catch (e) { console.log(mode, 'ERR', e.message); }
    await c.unbind();
  }
} finally { await s.stop(); }
