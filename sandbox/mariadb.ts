// sandbox/mariadb.ts — a private MariaDB server for tests, the benchmark and the demo.
// Owns: mariadb-install-db into a mkdtemp dir (prefix rq-mariadb-), mariadbd as our child on a
// free loopback port and a private socket, an optional server time zone (to put the DB in
// another zone than the daemon), the netacct database with nacctd's `traffic` table (and a
// `traffic6` twin for IPv6), a `qos` user with SELECT/INSERT on netacct (and all rights on a
// `qos` database for published state), fast batched traffic inserts, stop/kill/restart.
// Must run as root (mariadbd --user=root). Test-only code; never used by the daemon.

import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import mysql from 'mysql2/promise';

import {
  Tail,
  serverLifecycle,
  freePort,
  isRunning,
  makeTempDir,
  onProcessExit,
  run,
  sleep,
  spawnDaemon,
  tailLines,
  terminate,
  waitExit,
} from './proc.js';
import type { TlsFiles } from './slapd.js';

export interface MariadbOptions {
  /**
   * Server time zone: an offset ('+09:00', '-05:00', passed as --default-time-zone) or an IANA
   * name ('Europe/Paris', given to mariadbd as TZ so no time-zone tables are needed).
   * Default: inherit this process's zone.
   */
  timezone?: string;
  /** Listen port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** Engine of the traffic tables. nacctd used MyISAM; InnoDB survives kill() better. Default InnoDB. */
  engine?: 'InnoDB' | 'MyISAM';
  /** Time allowed for mariadbd to answer, ms. Default 60 000. */
  startTimeoutMs?: number;
  /**
   * TLS: the server offers it with this certificate and key (e.g. from slapd.ts' makeTlsFiles:
   * a throw-away CA, CN=localhost, DNS:localhost, IP:127.0.0.1). Default: no TLS at all.
   */
  tls?: TlsFiles;
}

export interface TrafficRow {
  ip: string;
  /** 'YYYY-MM-DD HH:00:00', server-local time */
  time: string;
  /** bytes to the local IP (download) */
  input: number;
  /** bytes from the local IP (upload) */
  output: number;
  peer_input?: number;
  peer_output?: number;
  direct_input?: number;
  direct_output?: number;
  local_input?: number;
  local_output?: number;
}

export interface MariadbServer {
  host: '127.0.0.1';
  port: number;
  /** unix socket (root can log in through it without a password) */
  socket: string;
  /** the unprivileged account the daemon should use: SELECT, INSERT on netacct.* */
  user: string;
  password: string;
  database: 'netacct';
  /** the TLS files the server was started with, or undefined (no TLS) */
  tls: TlsFiles | undefined;
  /** temp dir holding the datadir and the socket; removed by stop() */
  dir: string;
  /** Run SQL as root (several statements allowed; no default database: qualify or USE). */
  query(sql: string): Promise<void>;
  /** Run one SELECT as root in `netacct`, rows as plain objects (DATETIME as strings). */
  select<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Multi-row INSERTs into netacct.traffic (or traffic6), 5000 rows per statement. */
  insertTraffic(rows: readonly TrafficRow[], table?: 'traffic' | 'traffic6'): Promise<void>;
  /** Connection options for mysql2 as the `qos` user over TCP. */
  connectionOptions(): { host: string; port: number; user: string; password: string; database: string };
  pid(): number | undefined;
  running(): boolean;
  /** SIGTERM, wait (30 s, then SIGKILL), remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (for fault tests); restart() recovers the data. */
  kill(): Promise<void>;
  /** Start again on the same port with the same data (stops gracefully first if running). */
  restart(): Promise<void>;
}

/**
 * nacctd's table, as netacct-mysql creates it (signed INT despite the (20) width, no unique key).
 * `name` is used as written (e.g. netacct.traffic).
 */
export function trafficTableSql(name: string, ipLength: number, engine = 'InnoDB'): string {
  const counter = (name: string): string => `  \`${name}\` int(20) NOT NULL DEFAULT 0,`;
  return [
    `CREATE TABLE IF NOT EXISTS ${name} (`,
    '  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,',
    `  \`ip\` varchar(${ipLength}) NOT NULL DEFAULT '',`,
    '  `time` datetime NOT NULL,',
    ...['input', 'output', 'peer_input', 'peer_output', 'direct_input', 'direct_output', 'local_input', 'local_output'].map(counter),
    '  PRIMARY KEY (`id`),',
    '  KEY `ip` (`ip`,`time`)',
    `) ENGINE=${engine} DEFAULT CHARSET=latin1`,
  ].join('\n');
}

const TRAFFIC_COLUMNS = [
  'ip',
  'time',
  'input',
  'output',
  'peer_input',
  'peer_output',
  'direct_input',
  'direct_output',
  'local_input',
  'local_output',
] as const;

const CHUNK = 5000;

export async function startMariadb(opts: MariadbOptions = {}): Promise<MariadbServer> {
  if (process.getuid && process.getuid() !== 0) throw new Error('mariadb sandbox: must run as root');
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const engine = opts.engine ?? 'InnoDB';
  const tzArgs: string[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.timezone !== undefined) {
    if (/^(SYSTEM|[+-]\d{1,2}:\d{2})$/.test(opts.timezone)) {
      tzArgs.push(`--default-time-zone=${opts.timezone}`);
    } else if (existsSync(join('/usr/share/zoneinfo', opts.timezone))) {
      env.TZ = opts.timezone;
    } else {
      throw new Error(`mariadb sandbox: unknown time zone "${opts.timezone}" (use '+HH:MM' or an IANA name)`);
    }
  }

  const dir = makeTempDir('rq-mariadb-');
  const datadir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const user = 'qos';
  const password = randomBytes(12).toString('hex');
  const tail = new Tail();
  let child: ChildProcess | undefined;
  let port = opts.port ?? 0;

  const unregister = onProcessExit(() => {
    if (isRunning(child)) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const life = serverLifecycle('mariadb sandbox', { child: () => child, halt, start: () => startOnPort('restart'), unregister, dir });

  const fail = (what: string, log: string): Error =>
    new Error(`mariadb sandbox (${dir}): ${what}${log.trim() ? `\n--- log tail ---\n${tailLines(log)}` : ''}`);

  const rootConnect = (multi = false): Promise<mysql.Connection> =>
    mysql.createConnection({
      socketPath: socket,
      user: 'root',
      multipleStatements: multi,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: false,
    });

  async function probe(): Promise<boolean> {
    try {
      const c = await rootConnect();
      await c.end();
      return true;
    } catch {
      return false;
    }
  }

  async function launch(): Promise<void> {
    tail.clear();
    const c = spawnDaemon(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        '--user=root',
        ...(opts.tls
          ? [`--ssl-ca=${opts.tls.caFile}`, `--ssl-cert=${opts.tls.certFile}`, `--ssl-key=${opts.tls.keyFile}`]
          : ['--skip-ssl']),
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--tmpdir=${dir}`,
        '--skip-log-bin',
        '--skip-name-resolve',
        '--skip-external-locking',
        '--performance-schema=OFF',
        '--innodb-buffer-pool-size=64M',
        '--innodb-log-file-size=48M',
        '--innodb-flush-log-at-trx-commit=2', // survives kill(); 0 would lose the last second
        '--innodb-doublewrite=0',
        '--max-allowed-packet=64M',
        '--open-files-limit=4096',
        ...tzArgs,
      ],
      { env, cwd: dir },
    );
    child = c;
    c.stdout?.on('data', (d: Buffer) => tail.push(d));
    c.stderr?.on('data', (d: Buffer) => tail.push(d));
    c.once('error', (e) => tail.push(`\n[spawn error: ${e.message}]`));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (!isRunning(c)) {
        const ex = await waitExit(c);
        await sleep(100); // let the last stderr lines arrive
        const err = fail(`mariadbd exited during startup (code ${ex.code}, signal ${ex.signal})`, tail.text());
        (err as Error & { portBusy?: boolean }).portBusy = /Address already in use|errno: 98/i.test(tail.text());
        throw err;
      }
      if (existsSync(socket) && (await probe())) return;
      if (Date.now() > deadline) {
        await terminate(c, 'SIGKILL', 1000);
        throw fail(`mariadbd did not answer within ${startTimeoutMs} ms`, tail.text());
      }
      await sleep(50);
    }
  }

  /**
   * 'pick': first start without a requested port — on a port collision, pick another one.
   * 'fixed': first start on a requested port — fail at once if it is taken.
   * 'restart': same port as before — retry for ~5 s while the old socket lingers.
   */
  async function startOnPort(mode: 'pick' | 'fixed' | 'restart'): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (port === 0) port = await freePort();
      try {
        await launch();
        return;
      } catch (e) {
        const busy = (e as { portBusy?: boolean }).portBusy === true;
        if (busy && mode === 'pick' && attempt < 5) {
          port = 0;
          continue;
        }
        if (busy && mode === 'restart' && attempt < 20) {
          await sleep(250);
          continue;
        }
        throw e;
      }
    }
  }

  async function halt(): Promise<void> {
    if (isRunning(child)) await terminate(child, 'SIGTERM', 30_000);
  }

  async function rootQuery(sql: string): Promise<void> {
    if (life.isStopped()) throw new Error('mariadb sandbox: query after stop()');
    const c = await rootConnect(true);
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  try {
    const inst = await run(
      'mariadb-install-db',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--user=root',
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        `--tmpdir=${dir}`, // not the shared /tmp: two installs at once collided on temp tables there
      ],
      { env, timeoutMs: startTimeoutMs },
    );
    if (inst.code !== 0) throw fail(`mariadb-install-db failed (exit ${inst.code})`, `${inst.stdout}\n${inst.stderr}`);
    await startOnPort(opts.port === undefined ? 'pick' : 'fixed');
    const pw = `'${password}'`;
    await rootQuery(
      [
        'CREATE DATABASE netacct',
        'CREATE DATABASE qos',
        trafficTableSql('netacct.traffic', 15, engine),
        trafficTableSql('netacct.traffic6', 39, engine),
        ...['127.0.0.1', 'localhost', '%'].flatMap((h) => [
          `CREATE USER '${user}'@'${h}' IDENTIFIED BY ${pw}`,
          `GRANT SELECT, INSERT ON netacct.* TO '${user}'@'${h}'`,
          `GRANT ALL PRIVILEGES ON qos.* TO '${user}'@'${h}'`,
        ]),
        'FLUSH PRIVILEGES',
      ].join(';\n'),
    );
  } catch (e) {
    if (isRunning(child)) child.kill('SIGKILL');
    unregister();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const server: MariadbServer = {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    socket,
    user,
    password,
    database: 'netacct',
    tls: opts.tls,
    dir,
    query: rootQuery,
    async select<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
      if (life.isStopped()) throw new Error('mariadb sandbox: select after stop()');
      const c = await rootConnect();
      try {
        await c.query('USE netacct');
        const [rows] = await c.query(sql, params);
        return rows as T[];
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    async insertTraffic(rows, table = 'traffic') {
      if (life.isStopped()) throw new Error('mariadb sandbox: insertTraffic after stop()');
      if (rows.length === 0) return;
      const c = await rootConnect();
      try {
        const sql = `INSERT INTO netacct.\`${table}\` (${TRAFFIC_COLUMNS.join(', ')}) VALUES ?`;
        for (let i = 0; i < rows.length; i += CHUNK) {
          const values = rows
            .slice(i, i + CHUNK)
            .map((r) => [
              r.ip,
              r.time,
              r.input,
              r.output,
              r.peer_input ?? 0,
              r.peer_output ?? 0,
              r.direct_input ?? 0,
              r.direct_output ?? 0,
              r.local_input ?? 0,
              r.local_output ?? 0,
            ]);
          await c.query(sql, [values]);
        }
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    connectionOptions: () => ({ host: '127.0.0.1', port, user, password, database: 'netacct' }),
    pid: life.pid,
    running: life.running,
    stop: life.stop,
    kill: life.kill,
    restart: life.restart,
  };
  return server;
}
