// State of one upstream source (ok / down since ... / refused since ...), logging once
// per change of state: the first failure is an error line, the recovery an info line,
// nothing in between however many cycles fail. A refusal (an answer not safe to apply,
// src/state/snapshot.ts) is kept apart from up/down: the server may answer change searches
// while its full answer stays refused; only an accepted full answer ends it.

import type { Logger } from '../log.js';

export type SourceName = 'ldap' | 'mysql';

export interface HealthView {
  readonly state: 'unknown' | 'ok' | 'down';
  readonly since: string | null;
  readonly lastError: string | null;
  /** fetchedAt of the snapshot in use while down */
  readonly usingSnapshotOf: string | null;
}

export interface RefusalView {
  readonly since: string;
  readonly reason: string;
  /** fetchedAt of the snapshot in force meanwhile */
  readonly usingSnapshotOf: string | null;
}

export class SourceHealth {
  private view: HealthView = { state: 'unknown', since: null, lastError: null, usingSnapshotOf: null };
  private refusalView: RefusalView | null = null;

  constructor(
    private readonly name: SourceName,
    private readonly log: Logger,
  ) {}

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
      this.log.error(
        `${this.name} down: ${error}${usingSnapshotOf ? `; using the snapshot of ${usingSnapshotOf}` : '; no snapshot to fall back on'}`,
      );
      this.view = { state: 'down', since: now.toISOString(), lastError: error, usingSnapshotOf };
    } else {
      this.view = { ...this.view, lastError: error, usingSnapshotOf };
    }
  }

  get refusal(): RefusalView | null {
    return this.refusalView;
  }

  /** The source answered, but the answer was refused: one error line when this starts. */
  refused(now: Date, reason: string, usingSnapshotOf: string | null): void {
    if (this.view.state !== 'ok') this.ok(now);
    if (!this.refusalView) {
      this.log.error(`${this.name} refused: ${reason}${usingSnapshotOf ? `; the snapshot of ${usingSnapshotOf} stays in force` : ''}`);
      this.refusalView = { since: now.toISOString(), reason, usingSnapshotOf };
    } else {
      this.refusalView = { ...this.refusalView, reason, usingSnapshotOf };
    }
  }

  /** A complete answer was accepted: any refusal is over. */
  accepted(now: Date): void {
    this.ok(now);
    if (this.refusalView) {
      this.log.info(`${this.name}: a directory was accepted again (refused since ${this.refusalView.since})`);
      this.refusalView = null;
    }
  }

  /**
   * "ok", "down since <ISO>", "down since <ISO>, using snapshot of <ISO>", or
   * "refused since <ISO>: <reason>, using snapshot of <ISO>".
   */
  describe(): string {
    const v = this.view;
    const r = this.refusalView;
    if (v.state !== 'down' && r)
      return `refused since ${r.since}: ${r.reason}${r.usingSnapshotOf ? `, using snapshot of ${r.usingSnapshotOf}` : ''}`;
    if (v.state === 'ok') return 'ok';
    if (v.state === 'unknown') return 'unknown';
    return `down since ${v.since}${v.usingSnapshotOf ? `, using snapshot of ${v.usingSnapshotOf}` : ''}`;
  }
}
