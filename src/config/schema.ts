// The list of every qos.conf key: section, name, default, whether `reload` can change
// it live, and one line of documentation. The loader uses it to tell unknown keys
// (warnings) and restart-only keys (named in the reload answer); docs/CONFIG.md is
// checked against it by a test. Pure data: no I/O here.

export type Section =
  'ldap' | 'database' | 'firewall' | 'rates' | 'ratesrules' | 'qos' | 'site' | 'sharing' | 'path' | 'log' | 'metrics' | 'publish' | 'ha';

export interface KeySpec {
  readonly section: Section;
  readonly key: string;
  /** Default as it would be written in qos.conf; undefined = required; '' = empty. */
  readonly def: string | undefined;
  /** true if `reload` applies a change without restart. */
  readonly live: boolean;
  readonly doc: string;
}

const k = (section: Section, key: string, def: string | undefined, live: boolean, doc: string): KeySpec => ({
  section,
  key,
  def,
  live,
  doc,
});

export const RESEL_PEOPLE = 'ou=people,dc=maisel,dc=enst-bretagne,dc=fr';
export const RESEL_ORGA = 'ou=organisations,dc=maisel,dc=enst-bretagne,dc=fr';
export const RESEL_HOSTS = 'ou=machines,dc=resel,dc=enst-bretagne,dc=fr';

export const KEYS: readonly KeySpec[] = [
  // [ldap]
  k('ldap', 'host', undefined, true, 'LDAP server: host name, host:port, or ldap:// / ldaps:// URL'),
  k('ldap', 'user', '', true, 'bind DN; empty = anonymous bind'),
  k(
    'ldap',
    'password',
    '',
    true,
    'bind password (the file must then be owned by root, mode 0600 or 0640; a password over ldap:// without StartTLS draws a warning)',
  ),
  k('ldap', 'starttls', '0', true, '1 = upgrade ldap:// with StartTLS (certificate verified; no plaintext fallback)'),
  k(
    'ldap',
    'caFile',
    '',
    true,
    'PEM CA bundle to verify the server certificate (ldaps:// or StartTLS); empty = system CAs. `check` and every reload verify it is readable PEM',
  ),
  k('ldap', 'basepeople', RESEL_PEOPLE, true, 'base DN of people'),
  k('ldap', 'baseorga', RESEL_ORGA, true, 'base DN of organisations (clubs) that own machines; empty = none'),
  k('ldap', 'basehosts', RESEL_HOSTS, true, 'base DN of machines'),
  k('ldap', 'peopleFilter', '(uid=*)', true, 'filter for people'),
  k('ldap', 'orgaFilter', '(uid=*)', true, 'filter for organisations'),
  k('ldap', 'hostsFilter', '(objectClass=reselMachine)', true, 'filter for machines'),
  k('ldap', 'uidAttr', 'uid', true, "attribute holding an owner's identity"),
  k('ldap', 'ownerAttr', 'uidProprio', true, "machine attribute holding its owner's DN"),
  k('ldap', 'ipAttr', 'ipHostNumber', true, 'machine attribute holding IPv4 (suffix such as 200.3, or a full address)'),
  k('ldap', 'ip6Attr', 'ipv6HostNumber', true, 'machine attribute holding IPv6 addresses (or suffixes to area6Prefix)'),
  k(
    'ldap',
    'maxIpsPerMachine',
    '256',
    true,
    'most IP values (ipAttr and ip6Attr together) one machine entry may carry; a machine with more keeps none of its IPs (not allowed, not shaped) and is named in the log. Bounds the work and memory one entry can cost',
  ),
  k('ldap', 'zoneAttr', 'zone', true, 'machine attribute holding zones'),
  k('ldap', 'inactiveZone', 'Inactive', true, 'zone value that marks a machine disabled'),
  k('ldap', 'hostAttr', 'host', true, 'machine name attribute'),
  k('ldap', 'endInternetAttr', 'endInternet', true, 'owner attribute: end of internet rights (generalizedTime)'),
  k('ldap', 'coupureAttr', 'coupure', true, 'owner attribute: TRUE = internet cut'),
  k('ldap', 'banAttr', 'ban', true, 'owner attribute: services the owner is banned from'),
  k('ldap', 'cotizAttr', 'cotiz', true, 'owner attribute: years paid, BLACKLIST<year> = blacklisted'),
  k('ldap', 'pageSize', '500', true, 'entries per page of the paged search (keep at or below the server size limit)'),
  k('ldap', 'connectTimeout', '5s', true, 'TCP/TLS connect timeout'),
  k('ldap', 'timeout', '20s', true, 'timeout of one LDAP operation (each page)'),
  k(
    'ldap',
    'refresh',
    '10m',
    true,
    'period of the full directory fetch; between two, each cycle asks only for the entries modified since the last one (modifyTimestamp, needs `index modifyTimestamp eq` on the server). Deleted entries are only noticed by the next full fetch (or `reselqos update`). 0 = a full fetch every cycle',
  ),
  k(
    'ldap',
    'maxShrink',
    '20%',
    true,
    'refuse a directory that lost more than this share of machines since the last good one (past with update --force), or of machines allowed per family, entitled owners or machines with an IP since the largest of the last 24 h (the entitlement guard; past with update --accept)',
  ),
  // [database]
  k('database', 'host', undefined, true, 'MySQL/MariaDB server: host name or host:port'),
  k('database', 'port', '3306', true, 'TCP port (when host has none)'),
  k('database', 'socket', '', true, 'unix socket path; overrides host/port when set'),
  k('database', 'user', 'qos', true, 'user (needs SELECT on the traffic tables)'),
  k(
    'database',
    'password',
    '',
    true,
    'password (the file must then be owned by root, mode 0600 or 0640; a password over TCP to a non-loopback host without tls draws a warning)',
  ),
  k(
    'database',
    'tls',
    '0',
    true,
    '1 = TLS to the server, its certificate always verified (against caFile, else the system CAs); no plaintext fallback: a server without TLS is refused',
  ),
  k(
    'database',
    'caFile',
    '',
    true,
    'PEM CA bundle to verify the server certificate (with tls = 1); empty = system CAs. `check` and every reload verify it is readable PEM',
  ),
  k('database', 'db', 'netacct', true, 'database holding the netacct tables'),
  k('database', 'table', 'traffic', true, 'netacct table of IPv4 hour buckets'),
  k('database', 'table6', '', true, 'optional table of the same shape with IPv6 volumes; empty = none'),
  k('database', 'ipColumn', 'ip', true, 'column holding the IP string'),
  k('database', 'timeColumn', 'time', true, 'column holding the hour bucket (server local time)'),
  k(
    'database',
    'idColumn',
    'id',
    true,
    'auto-increment primary key of the table: each cycle reads only the rows added since (and a signature of the others); empty = read the open hours whole when they changed',
  ),
  k('database', 'downColumn', 'input', true, 'column of bytes towards the user (download)'),
  k('database', 'upColumn', 'output', true, 'column of bytes from the user (upload)'),
  k(
    'database',
    'exclude',
    '',
    true,
    'comma list of peer, direct, local: bytes in those <kind>_input/<kind>_output columns are not counted',
  ),
  k('database', 'connectTimeout', '5s', true, 'connect timeout'),
  k('database', 'timeout', '20s', true, 'query timeout'),
  k(
    'database',
    'closedRefresh',
    '15m',
    true,
    'the volumes of closed hour buckets (server local time; an hour closes 15 minutes after its end, three nacctd flushes) are cached and re-read only this often, when the reset changes, or when an hour closes (then only that hour); each cycle reads the open hours. Rows written later into closed buckets are picked up at the next refresh. 0 = no cache: the whole day every cycle',
  ),
  // [firewall]
  k('firewall', 'enabled', '1', true, '0 = no filtering at all (QoS only)'),
  k('firewall', 'areaPrefix', '172.22.', true, 'IPv4 prefix of this campus, prepended to ipHostNumber suffixes'),
  k('firewall', 'areaOtherPrefix', '172.23.', true, 'IPv4 prefix of the other campus'),
  k('firewall', 'area6Prefix', '', true, 'IPv6 prefix prepended to ipv6HostNumber suffixes'),
  k('firewall', 'eth_ext', undefined, false, 'interface towards the internet (upload is shaped on its egress)'),
  k('firewall', 'eth_int', undefined, false, 'interface towards the users (download is shaped on its egress)'),
  k(
    'firewall',
    'tunnel_name',
    '',
    true,
    'tunnel interface to the other campus (not internet); interface names: at most 15 bytes of letters, digits, _ . - @, no "+" wildcard',
  ),
  k('firewall', 'ip_int', '', true, "the gateway's own internal address (never locked out)"),
  k('firewall', 'net6', '', true, 'IPv6 network of the users (with the firewall and IPv6 on, net6 or user6Networks is required)'),
  k('firewall', 'v6Enabled', '1', true, '0 = no IPv6 filtering or shaping (accept all IPv6)'),
  k(
    'firewall',
    'userNetworks',
    '',
    true,
    'IPv4 networks of the users (CIDR list): the addresses a machine may hold, and the refused sources answered with refuse = reject (the firewall refuses by interface, whatever the source); empty = the network of areaPrefix (172.22. -> 172.22.0.0/16)',
  ),
  k('firewall', 'user6Networks', '', true, 'IPv6 networks of the users (CIDR list), as userNetworks; empty = net6'),
  k('firewall', 'checkPayment', '1', true, '1 = an owner needs endInternet in the future (absent = not paid)'),
  k('firewall', 'checkCoupure', '1', true, "1 = coupure: TRUE cuts the owner's machines"),
  k('firewall', 'checkBan', '1', true, "1 = a ban value listed in banServices cuts the owner's machines"),
  k('firewall', 'banServices', 'internet', true, 'ban values (comma list, case-insensitive) that mean "no internet"'),
  k('firewall', 'checkBlacklist', '1', true, "1 = a BLACKLIST<year> value in cotiz cuts the owner's machines"),
  k('firewall', 'openDestinations', '', true, 'networks every user machine may reach, allowed or not (CIDR list: DNS, DHCP, portal, ...)'),
  k(
    'firewall',
    'passSources',
    '',
    true,
    "networks (CIDR list, IPv4 and IPv6) whose traffic on eth_int passes unfiltered, both ways: a management network, a router behind the users' interface; everything else arriving there that is not allowed is refused, whatever its source address",
  ),
  k('firewall', 'refuse', 'reject', true, 'reject (TCP reset / ICMP admin-prohibited, immediate feedback) or drop'),
  k('firewall', 'portal', '', true, 'IP:port web traffic of unregistered or unpaid machines is redirected to (DNAT; empty = off)'),
  k('firewall', 'portalBan', '', true, 'IP:port web traffic of banned or cut machines is redirected to (empty = portal)'),
  k(
    'firewall',
    'portal6',
    '',
    true,
    '[IPv6]:port web traffic of unregistered or unpaid IPv6 machines is redirected to (ip6tables DNAT, e.g. [2001:db8::5]:80; empty = off for IPv6; needs v6Enabled = 1)',
  ),
  k('firewall', 'portalBan6', '', true, '[IPv6]:port web traffic of banned or cut IPv6 machines is redirected to (empty = portal6)'),
  k('firewall', 'portalPorts', '80', true, 'TCP destination ports redirected to the portal (comma list)'),
  k(
    'firewall',
    'netns',
    '',
    false,
    "network namespace holding the interfaces, sets and rules (kernel tools run through ip netns exec); empty = the daemon's own",
  ),
  // [rates]
  k('rates', 'down', undefined, true, 'rate shared between the users, download (e.g. 100Mbit)'),
  k('rates', 'up', undefined, true, 'rate shared between the users, upload'),
  k(
    'rates',
    'globalDown',
    '',
    true,
    "rate all sites together may use, download (required with [sharing] enabled = 1; then down is this site's own link, its cap)",
  ),
  k('rates', 'globalUp', '', true, 'rate all sites together may use, upload (required with [sharing] enabled = 1)'),
  // [qos]
  k('qos', 'enabled', '1', true, '0 = everyone in group 0, volumes ignored'),
  k('qos', 'groups', '6', false, 'number of groups per direction'),
  k('qos', 'classSeperationBase', '1250MB', true, 'limit of group 0 (bare number = MB)'),
  k('qos', 'classSeperationParameter', '1.6', true, 'limit(n) = limit(n-1) x parameter + base'),
  k('qos', 'classRateFactor', '0.8', true, 'per-user rate of group n+1 / group n (0 < f <= 1)'),
  k('qos', 'resetHour', '5', true, 'hour (local, 0-23) at which daily volumes restart from zero'),
  k('qos', 'timezone', '', true, "IANA time zone for rate rules and the reset; empty = the system's"),
  k(
    'qos',
    'offPeakFrom',
    '',
    true,
    'start (local HH:MM in [qos] timezone) of the off-peak window whose traffic counts at offPeakWeight toward the daily volume that decides the groups; the window may cross midnight (e.g. 23:00 to 7:00); empty = no window',
  ),
  k('qos', 'offPeakTo', '', true, 'end (local HH:MM, excluded) of the off-peak window; set with offPeakFrom'),
  k(
    'qos',
    'offPeakWeight',
    '1',
    true,
    'weight (0 <= w <= 1) of the bytes of the off-peak window in the counted volume: 0 = night traffic does not count, 1 = off (the raw volume decides). An hour row straddling an edge counts pro rata by its minutes inside the window (docs/DESIGN.md, "Off-peak hours")',
  ),
  k('qos', 'interval', '10s', true, 'time between cycles'),
  k(
    'qos',
    'count',
    'all',
    true,
    'which users count in a group: all (every user with an IP) or active (volume > 0 today in that direction)',
  ),
  k('qos', 'emptyClassRate', '8kbit', true, 'rate given to a group class with no user (floor)'),
  k('qos', 'ceil', '100%', true, 'ceil of every group class, as a share of the direction total'),
  k(
    'qos',
    'defaultRate',
    '1Mbit',
    true,
    'guaranteed rate of the default class (traffic of no user: servers, infrastructure), taken from the total',
  ),
  k('qos', 'classifier', 'fw', false, 'fw (MARK + tc fw filter) or classify (iptables CLASSIFY straight to the class)'),
  k(
    'qos',
    'leaf',
    'fq_codel',
    false,
    "leaf qdisc of each class: fq_codel (the default: with fairness = host, shares by user and keeps each user's queue short), sfq (shares by flow only), cake (its rtt scaled to the class rate), pfifo or none",
  ),
  k(
    'qos',
    'fairness',
    'host',
    false,
    'how a group class is shared: host (equally by user address whatever their number of flows; download by destination, upload by source: fq_codel behind a flow filter hashing the address, cake dual-dsthost/dual-srchost nat) or flow (by flow: a user with many flows takes many shares). host needs leaf = fq_codel or cake; with leaf = sfq the default is flow and host is refused (one FIFO per user: their own download would delay their interactive traffic by seconds)',
  ),
  k('qos', 'setPrefix', 'qos_', false, 'prefix of IPv4 ipsets (qos_d0, qos_u0, ...)'),
  k('qos', 'set6Prefix', 'v6qos_', false, 'prefix of IPv6 ipsets'),
  k('qos', 'chainPrefix', 'RESELQOS', false, 'prefix of our iptables chains'),
  k('qos', 'markDown', '1000', false, 'mark of download group X = markDown + X'),
  k('qos', 'markUp', '2000', false, 'mark of upload group X = markUp + X'),
  k('qos', 'fullSyncInterval', '5m', true, 'period of the full read-back of the kernel state'),
  k(
    'qos',
    'verifyInterval',
    '30s',
    true,
    'period of the read-back of our iptables chains and tc tree (ipset entry counts are checked every cycle; anything we did not apply is repaired at the next read-back)',
  ),
  // [site], [sharing]
  k(
    'site',
    'name',
    '',
    false,
    "this gateway's name among the sites and in the published tables (letters, digits, _ . -); empty = the host name",
  ),
  k(
    'sharing',
    'enabled',
    '0',
    true,
    '1 = share the global rates with the other sites through the database (docs/DESIGN.md, "Sites"): this site\'s total becomes its allocation, between its share and [rates] down/up',
  ),
  k('sharing', 'weight', '1', true, "this site's weight: its static share is global x weight / sum of the weights"),
  k(
    'sharing',
    'stale',
    '3',
    true,
    'a site whose row is older than this many intervals is stale: every site then falls back to its static share',
  ),
  k(
    'sharing',
    'db',
    'qos',
    true,
    'database on the [database] server holding the table `sites` (created if missing; needs SELECT, INSERT, UPDATE, CREATE)',
  ),
  // [path]
  k('path', 'log', '/var/log/reselqos', false, 'log directory (reselqos.log inside)'),
  k('path', 'state', '/var/lib/reselqos', false, 'state directory (last good snapshots)'),
  k('path', 'run', '/run/reselqos', false, 'runtime directory (pid file, control socket)'),
  // [log]
  k('log', 'level', 'info', true, 'error, warn, info or debug'),
  // [metrics]
  k(
    'metrics',
    'listen',
    '127.0.0.1:9721',
    true,
    'address:port of the HTTP listener serving /metrics (Prometheus) and the dashboard at /; empty = off. Any address other than loopback needs token',
  ),
  k(
    'metrics',
    'token',
    '',
    true,
    'when set (at least 16 visible ASCII characters), every request needs the header Authorization: Bearer <token> or the session cookie of the dashboard login form (401 otherwise)',
  ),
  // [publish]
  k(
    'publish',
    'enabled',
    '0',
    true,
    '1 = after each applied cycle, write the per-user groups and volumes (people_data) and the classes (classes) to a MySQL database for the campus site',
  ),
  k('publish', 'db', 'qos', true, 'database of the published tables (created when missing)'),
  k('publish', 'host', '', true, 'MySQL/MariaDB server (host or host:port); empty = the [database] server, user and password'),
  k('publish', 'user', '', true, 'user with CREATE, SELECT, INSERT, UPDATE, DELETE on the db (with host set)'),
  k('publish', 'password', '', true, 'its password (with host set; the file must then be mode 0600)'),
  k(
    'publish',
    'tls',
    '',
    true,
    'with host set: 1 = TLS to that server, its certificate always verified (against caFile), no plaintext fallback; 0 = plaintext (warned about for a host other than loopback); empty = as [database] tls. Without host, [database] tls and caFile apply',
  ),
  k(
    'publish',
    'caFile',
    '',
    true,
    'with host set and tls: PEM CA bundle to verify that server; empty = [database] caFile (itself empty = the system CAs). `check` and every reload verify it is readable PEM',
  ),
  k(
    'publish',
    'timeout',
    '10s',
    true,
    'time allowed for one write (connect and transaction); past it the cycle goes on and the next success writes everything',
  ),
  // [ha]
  k(
    'ha',
    'role',
    'master',
    false,
    'the role at start when keepalived has not told one yet ([path] run/ha-role, written by `reselqos role`): master writes the [publish] tables and the [sharing] row; backup and fault only read them. The kernel state is the same whatever the role (docs/INSTALL.md, "HA pair")',
  ),
  k(
    'ha',
    'failures',
    '3',
    true,
    '`reselqos status --health` fails (keepalived then hands over) after this many cycles in a row failed on the kernel (read-back or apply); a source outage never counts',
  ),
  k(
    'ha',
    'maxAge',
    '2m',
    true,
    '`reselqos status --health` fails when no cycle has ended for this long (a daemon stuck in a cycle); more than [qos] interval; unset = 2m or 3 intervals, the longer',
  ),
  k(
    'ha',
    'trackTimeout',
    '10s',
    true,
    "a master whose health was asked (keepalived's track_script) and is then not asked for this long takes itself for orphaned (keepalived killed) and stops writing (role backup) until keepalived speaks again; 0 = never",
  ),
];

export const SECTIONS: readonly Section[] = [
  'ldap',
  'database',
  'firewall',
  'rates',
  'ratesrules',
  'qos',
  'site',
  'sharing',
  'path',
  'log',
  'metrics',
  'publish',
  'ha',
];

export function specOf(section: Section, key: string): KeySpec | undefined {
  const lower = key.toLowerCase();
  return KEYS.find((s) => s.section === section && s.key.toLowerCase() === lower);
}

/** Keys accepted in a section beyond the table: [rates] any name, [ratesrules] ruleN*, [firewall] eth_*, ip_*, net*. */
export function isPatternKey(section: Section, key: string): boolean {
  if (section === 'rates') return /^[A-Za-z][A-Za-z0-9_]*$/.test(key);
  if (section === 'ratesrules') return /^rule[0-9]+(from|to|globalup|globaldown|up|down)$/i.test(key);
  if (section === 'firewall') return /^(eth_|ip_|net)/i.test(key);
  return false;
}
