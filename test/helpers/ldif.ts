// LDIF of the sandbox schema's people and machines, for the source tests.
import { MACHINES_BASE, PEOPLE_BASE } from '../../sandbox/slapd.js';

export const person = (uid: string, extra = ''): string =>
  `dn: uid=${uid},${PEOPLE_BASE}
objectClass: genericPerson
objectClass: reselPerson
uid: ${uid}
firstName: ${uid}
lastName: Test
cotiz: 2026
endInternet: 20300815000000Z
${extra}`.trim() + '\n\n';

/** A machine; `mac` adds a macAddress line (attributes the daemon does not read must not matter). */
export const machine = (host: string, owner: string, ips: string[], extra = '', mac = false): string =>
  `dn: host=${host},${MACHINES_BASE}
objectClass: reselMachine
host: ${host}
uidProprio: ${owner}
${ips.map((ip) => `ipHostNumber: ${ip}`).join('\n')}
${mac ? 'macAddress: 12:23:34:45:56:67\n' : ''}zone: Brest
${extra || 'zone: User'}`.trim() + '\n\n';
