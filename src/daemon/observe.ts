// Wiring of what watches the daemon from outside: the metrics observer, the HTTP
// listener (/metrics, the dashboard) and the publisher of the campus site's tables.
// The daemon makes one call per cycle (cycle), one per reload (reconfigure), one at
// stop (close). None of them can fail a cycle.

import type { Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Runtime } from './runtime.js';
import type { CycleReport } from '../cycle/cycle.js';
import { Observer } from '../metrics/observer.js';
import { HttpListener } from '../http/server.js';
import { Publisher } from '../publish/publish.js';

export class Observability {
  readonly publisher: Publisher;
  readonly observer: Observer;
  readonly http: HttpListener;

  constructor(config: Config, rt: Runtime, log: Logger, clock: Clock) {
    this.publisher = new Publisher(config, log);
    this.observer = new Observer(config, rt.sources, rt.reconciler, log, clock, this.publisher, () => rt.sharing.view);
    this.http = new HttpListener(this.observer, log);
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
