// Wiring of what watches the daemon from outside: the metrics observer, the HTTP
// listener (/metrics, the dashboard) and the publisher of the campus site's tables.
// The daemon makes one call per cycle (cycle), one per reload (reconfigure), one at
// stop (close). None of them can fail a cycle. The HA role (src/ha/role.ts) switches the
// publisher on (master) and off, and shows in the metrics and the dashboard.

import type { Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Runtime } from './runtime.js';
import type { CycleReport } from '../cycle/cycle.js';
import { Observer } from '../metrics/observer.js';
import { HttpListener } from '../http/server.js';
import { Publisher } from '../publish/publish.js';
import { ROLES, type Role } from '../ha/role.js';

export class Observability {
  readonly publisher: Publisher;
  readonly observer: Observer;
  readonly http: HttpListener;

  constructor(config: Config, rt: Runtime, log: Logger, clock: Clock) {
    this.publisher = new Publisher(config, log);
    this.observer = new Observer(config, rt.sources, rt.reconciler, log, clock, this.publisher, () => rt.sharing.view);
    this.http = new HttpListener(this.observer, log);
    // The HA role: only the master publishes; the metric and the dashboard follow each change.
    const role = rt.role;
    this.observer.haView = () => ({ role: role.current, since: role.since });
    this.roleChanged(role.current);
    role.onChange((c) => this.roleChanged(c.to));
  }

  private roleChanged(role: Role): void {
    this.publisher.setWriting(role === 'master');
    for (const r of ROLES) this.observer.metrics.haRole.set({ role: r }, r === role ? 1 : 0);
  }

  async open(config: Config): Promise<void> {
    await this.http.configure(config);
  }

  cycle(report: CycleReport): Promise<void> {
    return this.observer.cycle(report);
  }

  async reconfigure(config: Config): Promise<void> {
    this.observer.reconfigure(config);
    await this.publisher.reconfigure(config);
    await this.http.configure(config);
  }

  async close(): Promise<void> {
    await this.http.close();
    await this.publisher.close();
  }
}
