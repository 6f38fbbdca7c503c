// The Prometheus metrics (prom-client): one registry per daemon, every value set once per
// cycle by the observer (src/metrics/observer.ts); a scrape only serialises what is there.
// Names and labels are a contract with operators' dashboards and alerts: change none.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  private readonly dg = ['direction', 'group'] as const;
  readonly users = new Gauge({
    name: 'reselqos_users',
    help: 'users counted in each group (as the class rates count them)',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly rate = new Gauge({
    name: 'reselqos_class_rate_bps',
    help: 'guaranteed rate of the group class (policy), bit/s',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly ceil = new Gauge({
    name: 'reselqos_class_ceil_bps',
    help: 'ceil of the group class (policy), bit/s',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly sent = new Counter({
    name: 'reselqos_class_sent_bytes_total',
    help: 'bytes sent by the group class (tc -s class show)',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly sentPackets = new Counter({
    name: 'reselqos_class_sent_packets_total',
    help: 'packets sent by the group class (tc -s class show)',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly dropped = new Counter({
    name: 'reselqos_class_dropped_packets_total',
    help: 'packets dropped in the group class',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly overlimits = new Counter({
    name: 'reselqos_class_overlimits_total',
    help: 'times the group class was over its rate',
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly backlog = new Gauge({
    name: 'reselqos_class_backlog_bytes',
    help: "bytes waiting in the group class's leaf queue at the last cycle",
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly queued = new Gauge({
    name: 'reselqos_class_backlog_packets',
    help: "packets waiting in the group class's leaf queue at the last cycle",
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly leafDrops = new Counter({
    name: 'reselqos_class_leaf_dropped_packets_total',
    help: "packets dropped by the group class's leaf qdisc, its AQM included (cake and fq_codel drop inside the leaf, which the class counter misses)",
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly ecnMarks = new Counter({
    name: 'reselqos_class_ecn_marked_packets_total',
    help: "packets ECN-marked by the group class's leaf (fq_codel, cake) instead of dropped",
    labelNames: this.dg,
    registers: [this.registry],
  });
  readonly queueDelay = new Gauge({
    name: 'reselqos_class_queue_delay_seconds',
    help: "queueing delay in the group class's leaf as cake reports it (stat: avg, peak of its busiest tin)",
    labelNames: [...this.dg, 'stat'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'reselqos_cycle_duration_seconds',
    help: 'duration of each phase of a cycle (apply = kernel read-back, diff and apply)',
    labelNames: ['phase'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly cycles = new Counter({
    name: 'reselqos_cycles_total',
    help: 'cycles run, by result',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly moves = new Counter({
    name: 'reselqos_moves_total',
    help: 'users whose group changed, per direction',
    labelNames: ['direction'],
    registers: [this.registry],
  });
  readonly sourceUp = new Gauge({
    name: 'reselqos_source_up',
    help: '1 when the source answered at the last cycle',
    labelNames: ['source'],
    registers: [this.registry],
  });
  readonly sourceRefused = new Gauge({
    name: 'reselqos_source_refused',
    help: "1 while the source's answer is refused as unsafe (the LDAP directory: maxShrink, the entitlement guard) and the last good snapshot stays in force",
    labelNames: ['source'],
    registers: [this.registry],
  });
  readonly allowed = new Gauge({
    name: 'reselqos_allowed_machines',
    help: 'active machines the firewall lets out, with an address of that family (inet, inet6)',
    labelNames: ['family'],
    registers: [this.registry],
  });
  readonly refused = new Gauge({
    name: 'reselqos_refused_machines',
    help: "active machines the firewall refuses, by the owner's reason",
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly ruleActive = new Gauge({
    name: 'reselqos_rate_rule_active',
    help: '1 for the rate rule in force, 0 for the other configured rules',
    labelNames: ['rule'],
    registers: [this.registry],
  });
  readonly lastCycle = new Gauge({
    name: 'reselqos_last_cycle_timestamp_seconds',
    help: 'end of the last successful cycle, Unix time',
    registers: [this.registry],
  });
  readonly interval = new Gauge({
    name: 'reselqos_cycle_interval_seconds',
    help: 'the configured time between two cycles ([qos] interval), seconds',
    registers: [this.registry],
  });
  // Sites sharing a global link ([sharing] enabled = 1 only; docs/DESIGN.md, "Sites").
  readonly siteDemand = new Gauge({
    name: 'reselqos_site_demand_bps',
    help: "this site's measured throughput over the last interval, bit/s",
    labelNames: ['direction'],
    registers: [this.registry],
  });
  readonly siteAllocation = new Gauge({
    name: 'reselqos_site_allocation_bps',
    help: 'the total this site applies (its share of the global rate), bit/s',
    labelNames: ['direction'],
    registers: [this.registry],
  });
  readonly siteCap = new Gauge({
    name: 'reselqos_site_cap_bps',
    help: "this site's own link capacity ([rates] down/up), bit/s",
    labelNames: ['direction'],
    registers: [this.registry],
  });
  readonly siteMode = new Gauge({
    name: 'reselqos_site_sharing_mode',
    help: '1 for the mode in force: sharing, static (a site is stale) or db-down',
    labelNames: ['mode'],
    registers: [this.registry],
  });
  readonly peerFresh = new Gauge({
    name: 'reselqos_site_peer_fresh',
    help: "1 when the other site's row is fresh, 0 when stale",
    labelNames: ['site'],
    registers: [this.registry],
  });
  readonly peerAllocation = new Gauge({
    name: 'reselqos_site_peer_allocation_bps',
    help: 'what the other site says it applies, bit/s',
    labelNames: ['site', 'direction'],
    registers: [this.registry],
  });

  // The HA pair (src/ha/role.ts): set at start and at every `reselqos role`.
  readonly haRole = new Gauge({
    name: 'reselqos_ha_role',
    help: "1 for this gateway's role in an HA pair (master, backup, fault), 0 for the others; a single gateway is master",
    labelNames: ['role'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: '' });
    for (const result of ['ok', 'failed']) this.cycles.inc({ result }, 0);
    for (const direction of ['down', 'up']) this.moves.inc({ direction }, 0);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
