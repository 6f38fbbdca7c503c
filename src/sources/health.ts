// State of one upstream source (ok / down since ...), logging once per change of
// state: the first failure is an error line, the recovery an info line, nothing in
// between however many cycles fail.

import type { Logger } from '../log.js';

export type SourceName = 'ldap' | 'mysql';

export interface HealthView {
  readonly state: 'unknown' | 'ok' | 'down';
  readonly since: string | null;
  readonly lastError: string | null;
  /** fetchedAt of the snapshot in use while down */
  readonly usingSnapshotOf: string | null;
}

export class SourceHealth {
  private view: HealthView = { state: 'unknown', since: null, lastError: null, usingSnapshotOf: null };

  constructor(private readonly name: SourceName, private readonly log: Logger) {}

  get current(): HealthView {
    return this.view;
  }

  ok(now: Date): void {
    if (this.view.state === 'down') {
      const secs = Math.round((now.getTime() - Date.parse(this.view.since!)) / 1000);
      this.log.info(`${this.name} recovered after ${secs}s down`);
    }
    this.view = { state: 'ok', since: now.toISOString(), lastError: null, usingSnapshotOf: null };
  }

  failed(now: Date, error: string, usingSnapshotOf: string | null): void {
    if (this.view.state !== 'down') {
      this.log.error(`${this.name} down: ${error}${usingSnapshotOf ? `; using the snapshot of ${usingSnapshotOf}` : '; no snapshot to fall back on'}`);
      this.view = { state: 'down', since: now.toISOString(), lastError: error, usingSnapshotOf };
    } else {
      this.view = { ...this.view, lastError: error, usingSnapshotOf };
    }
  }

  /** "ok", "down since <ISO>" or "down since <ISO>, using snapshot of <ISO>". */
  describe(): string {
    const v = this.view;
    if (v.state === 'ok') return 'ok';
    if (v.state === 'unknown') return 'unknown';
    return `down since ${v.since}${v.usingSnapshotOf ? `, using snapshot of ${v.usingSnapshotOf}` : ''}`;
  }
}
