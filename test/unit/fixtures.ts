// Small qos.conf texts for unit tests.

export interface ConfParts {
  ldap?: string;
  database?: string;
  firewall?: string;
  rates?: string;
  ratesrules?: string;
  qos?: string;
  path?: string;
  extra?: string;
}

export function minimalConf(p: ConfParts = {}): string {
  return [
    '[ldap]',
    'host = ldap.example.org',
    p.ldap ?? '',
    '[database]',
    'host = db.example.org',
    p.database ?? '',
    '[firewall]',
    'eth_ext = ext0',
    'eth_int = int0',
    'net6 = 2001:db8::/32',
    p.firewall ?? '',
    '[rates]',
    'down = 100Mbit',
    'up = 100Mbit',
    'tunnelUp = 20Mbit',
    'tunnelDown = 20Mbit',
    p.rates ?? '',
    '[ratesrules]',
    p.ratesrules ?? '',
    '[qos]',
    p.qos ?? '',
    '[path]',
    p.path ?? '',
    p.extra ?? '',
  ].join('\n');
}
