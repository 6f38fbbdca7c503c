// The typed configuration: what parseConfig (config.ts) builds once from qos.conf and every
// module receives by constructor. Types only.

export type Classifier = 'fw' | 'classify';
export type Leaf = 'sfq' | 'fq_codel' | 'cake' | 'pfifo' | 'none';
/** how a group class is shared among its users: by user address (host) or by flow */
export type Fairness = 'host' | 'flow';
export type CountMode = 'all' | 'active';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type ExcludeKind = 'peer' | 'direct' | 'local';

export interface RateRule {
  readonly name: string; // "rule1"
  readonly index: number;
  readonly from: number; // minutes after local midnight
  readonly to: number;
  /** bit/s; 0 = leave that rate unchanged */
  readonly globalUp: number;
  readonly globalDown: number;
  readonly up: number;
  readonly down: number;
}

export interface LdapConfig {
  readonly url: string;
  readonly starttls: boolean;
  readonly caFile: string | null;
  readonly user: string;
  readonly password: string;
  readonly basePeople: string;
  readonly baseOrga: string;
  readonly baseHosts: string;
  readonly peopleFilter: string;
  readonly orgaFilter: string;
  readonly hostsFilter: string;
  readonly attrs: {
    readonly uid: string;
    readonly owner: string;
    readonly ip: string;
    readonly ip6: string;
    readonly zone: string;
    readonly host: string;
    readonly endInternet: string;
    readonly coupure: string;
    readonly ban: string;
    readonly cotiz: string;
  };
  readonly inactiveZone: string;
  readonly pageSize: number;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly maxShrink: number; // share 0..1
  /** most IP values one machine entry may carry (more: the machine keeps no IP) */
  readonly maxIpsPerMachine: number;
  /** period of the full fetch; 0 = full fetch every cycle (no change searches) */
  readonly refreshMs: number;
}

export interface DatabaseConfig {
  readonly host: string;
  readonly port: number;
  readonly socket: string | null;
  readonly user: string;
  readonly password: string;
  readonly db: string;
  readonly table: string;
  readonly table6: string | null;
  /** id: the auto-increment primary key (null: none, the open hours are read whole when they change) */
  readonly columns: { readonly ip: string; readonly time: string; readonly down: string; readonly up: string; readonly id: string | null };
  readonly exclude: readonly ExcludeKind[];
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  /** TLS to the server, certificate always verified (against caFile, else the system CAs) */
  readonly tls: boolean;
  readonly caFile: string | null;
  /** period of the full re-read of closed hour buckets; 0 = no cache */
  readonly closedRefreshMs: number;
}

export interface FirewallConfig {
  readonly enabled: boolean;
  readonly areaPrefix: string;
  readonly areaOtherPrefix: string;
  readonly area6Prefix: string;
  readonly ethExt: string;
  readonly ethInt: string;
  readonly tunnelName: string;
  readonly ipInt: string;
  /** every ip_* key: the gateway's own addresses */
  readonly gatewayIps: Readonly<Record<string, string>>;
  /** every eth_* key */
  readonly interfaces: Readonly<Record<string, string>>;
  /** every net* key */
  readonly networks: Readonly<Record<string, string>>;
  readonly v6Enabled: boolean;
  /** network namespace of the data plane; '' = our own */
  readonly netns: string;
  readonly userNetworks: readonly string[];
  readonly user6Networks: readonly string[];
  readonly checkPayment: boolean;
  readonly checkCoupure: boolean;
  readonly checkBan: boolean;
  /** lowercased */
  readonly banServices: readonly string[];
  readonly checkBlacklist: boolean;
  readonly openDestinations: readonly string[];
  /** sources (CIDRs, both families) that pass on eth_int without being allowed */
  readonly passSources: readonly string[];
  readonly refuse: 'reject' | 'drop';
  readonly portal: { readonly ip: string; readonly port: number } | null;
  readonly portalBan: { readonly ip: string; readonly port: number } | null;
  /** the same pages for IPv6 machines ([IPv6]:port in qos.conf) */
  readonly portal6: { readonly ip: string; readonly port: number } | null;
  readonly portalBan6: { readonly ip: string; readonly port: number } | null;
  readonly portalPorts: readonly number[];
}

/** [qos] offPeakFrom/To/Weight: traffic of these local minutes counts at `weight` (0 <= weight < 1). */
export interface OffPeakWindow {
  readonly from: number;
  readonly to: number;
  readonly weight: number;
}

export interface QosConfig {
  readonly enabled: boolean;
  readonly groups: number;
  readonly base: number; // bytes
  readonly parameter: number;
  readonly factor: number;
  readonly resetHour: number;
  readonly timezone: string;
  /** the off-peak window (minutes of the local day, `to` excluded) and its weight; null = off (weight 1 or no window) */
  readonly offPeak: OffPeakWindow | null;
  readonly intervalMs: number;
  readonly count: CountMode;
  readonly emptyClassRate: number; // bit/s
  readonly ceilShare: number; // 0..1
  readonly defaultRate: number; // bit/s
  readonly classifier: Classifier;
  readonly leaf: Leaf;
  readonly fairness: Fairness;
  readonly setPrefix: string;
  readonly set6Prefix: string;
  readonly chainPrefix: string;
  readonly markDown: number;
  readonly markUp: number;
  readonly fullSyncIntervalMs: number;
  readonly verifyIntervalMs: number;
}

export interface MetricsConfig {
  /** null = no HTTP listener */
  readonly listen: { readonly host: string; readonly port: number } | null;
  /** '' = no authentication (loopback only) */
  readonly token: string;
}

export interface PublishConfig {
  readonly enabled: boolean;
  readonly db: string;
  /** the server written to: [publish] host/user/password, else the [database] ones */
  readonly host: string;
  readonly port: number;
  readonly socket: string | null;
  readonly user: string;
  readonly password: string;
  /** TLS to that server, certificate always verified: [publish] tls with a host of its own, else (and when empty) [database] tls */
  readonly tls: boolean;
  /** PEM CA bundle (with tls): [publish] caFile with a host of its own, else (and when empty) [database] caFile */
  readonly caFile: string | null;
  readonly timeoutMs: number;
}

export interface SharingConfig {
  readonly enabled: boolean;
  readonly weight: number;
  /** intervals after which a site's row is stale */
  readonly stale: number;
  readonly db: string;
}

export interface HaConfig {
  /** the role at start when [path] run/ha-role does not say one (src/ha/role.ts) */
  readonly role: 'master' | 'backup' | 'fault';
  /** `status --health` fails after this many cycles in a row failed on the kernel */
  readonly failures: number;
  /** `status --health` fails when no cycle has ended for this long */
  readonly maxAgeMs: number;
  /** a master whose health is no longer asked for this long stops writing (0 = never) */
  readonly trackTimeoutMs: number;
}

export interface Config {
  readonly file: string;
  /** [site] name: this gateway among the sites (default: the host name) */
  readonly site: { readonly name: string };
  readonly sharing: SharingConfig;
  readonly ldap: LdapConfig;
  readonly database: DatabaseConfig;
  readonly firewall: FirewallConfig;
  /** every [rates] key, bit/s (up, down always present; globalUp/globalDown when set) */
  readonly rates: Readonly<Record<string, number>>;
  readonly rateRules: readonly RateRule[];
  readonly qos: QosConfig;
  readonly paths: { readonly log: string; readonly state: string; readonly run: string };
  readonly log: { readonly level: LogLevel };
  readonly metrics: MetricsConfig;
  readonly publish: PublishConfig;
  /** the HA pair: role at start, the health check's limits */
  readonly ha: HaConfig;
  readonly warnings: readonly string[];
  /** raw values as written, per "section.key" (lowercased key), to tell what a reload changes */
  readonly raw: Readonly<Record<string, string>>;
  /** each key of `raw` as the file spells it ("rates.tunneldown" → "tunnelDown"), so a rebuilt config keeps the names */
  readonly keyNames: Readonly<Record<string, string>>;
  /** line of each key, per "section.key" (lowercased key): later checks of files name it */
  readonly lines: Readonly<Record<string, number>>;
}
