/**
 * A podman container's final phase whose freeze does not write the memory (opt-in:
 * `U2CM_CONTAINER_FREEZE=lazy`): podman's own checkpoint runs CRIU as a lazy dump, and only the
 * pages that differ from what the destination holds are read from the frozen container and sent.
 *
 * How CRIU is told, podman having no such option: runc hands CRIU `/etc/criu/runc.conf` as its
 * configuration file when the container has no `org.criu.config` annotation (podman's containers
 * have none), and CRIU applies that file over runc's own options. So `podman container checkpoint`
 * runs in a mount namespace of its own where an overlay over /etc adds `criu/runc.conf` saying
 * `lazy-pages` (address, port: a loopback page server nobody but u2cm talks to) and
 * `leave-stopped` (with podman's `--leave-running`: runc does not end the container, CRIU leaves
 * its tasks stopped). The host's /etc is untouched. Then:
 *
 * 1. CRIU writes every image but the anonymous memory and starts its page server: the tree is
 *    stopped, its images in the container's userdata;
 * 2. the frozen processes' lazy runs are scanned (process_vm_readv + hash) against the source's
 *    ledger, the changed pages sent, the eager ones from the images;
 * 3. the page server is closed unserved: CRIU finishes, leaving the tasks stopped; podman writes
 *    its export (no memory in it) and the pagemaps go out with the lazy runs marked present, so
 *    the destination rebuilds complete images from its store and restores as before, checked
 *    against the manifest (every page's hash as the ledger holds it) and read back.
 *
 * Until the commit the source owns the container, and it never stopped running in podman's view:
 * a rollback resumes its tasks (the driver's SIGCONT). After the commit the driver ends the tasks
 * and `drain()` removes the container.
 *
 * @example
 * ```ts
 * const phase = podmanLazyFinalPhase({ info, node, userdata });
 * ```
 *
 * @module
 */
import { encodePagemap, readDumpDir, storedAddresses } from "../criu/images/mod.ts";
import { closeLazyDump, criuVersionOfLog } from "../criu/run.ts";
import { criuVersionOf } from "../criu/probe.ts";
import { sendChangedPages } from "../engine/dump_pages.ts";
import { heldIndex, scanChanged } from "../engine/final_scan.ts";
import { addFromLedger, lazyRuns, presentAndLazy } from "../engine/final_scan_copy.ts";
import { ManifestBuilder } from "../engine/manifest.ts";
import { PageReader, sendLivePages } from "../engine/page_reader.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "../engine/parts.ts";
import { sendDumpVerified } from "../engine/send_dump.ts";
import type { PhaseTimes } from "../engine/types.ts";
import { pidNamespaceMap } from "../tracker/proc.ts";
import { checkpointPodman, type PodmanCheckpoint } from "./checkpoint.ts";
import {
  type PodmanFinalOptions,
  podmanRestoreRequest,
  removeSourceAfterCommit,
} from "./final_phase.ts";
import { podmanStore } from "./podman.ts";
import { sendPodmanFiles } from "./source.ts";

/** How long the lazy dump may take to come up. */
const READY_TIMEOUT_MS = 60_000;

/** The lazy podman final phase for the driver. */
export function podmanLazyFinalPhase(options: PodmanFinalOptions): FinalPhase {
  return { name: "stop-and-copy", freeze: (ctx) => freezeLazy(ctx, options) };
}

async function freezeLazy(ctx: FinalContext, o: PodmanFinalOptions): Promise<FrozenTree> {
  const { channel, dir } = ctx;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const roots = o.roots ?? await podmanStore(o.node, { signal: ctx.signal });
  const userdata = o.userdata;
  if (!userdata) throw new Error("the lazy container freeze needs the container's userdata");
  const listen = { address: "127.0.0.1", port: freePort() };
  const etc = `${dir}/etc`;
  await Deno.mkdir(`${etc}/upper/criu`, { recursive: true });
  await Deno.mkdir(`${etc}/work`, { recursive: true });
  await Deno.writeTextFile(
    `${etc}/upper/criu/runc.conf`,
    ["lazy-pages", `address ${listen.address}`, `port ${listen.port}`, "leave-stopped", ""]
      .join("\n"),
  );
  const wrap = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -t overlay u2cm -o "lowerdir=/etc,upperdir=$0/upper,workdir=$0/work" /etc && exec "$@"',
    etc,
  ];
  const hostOf = new Map<number, number>();
  for (const [host, ns] of pidNamespaceMap(ctx.pid)) if (!hostOf.has(ns)) hostOf.set(ns, host);
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  const t0 = performance.now();
  const checkpointing = checkpointPodman(o.node, {
    id: o.info.id,
    workDir: `${dir}/ck`,
    tcpEstablished: ctx.tcp !== undefined,
    withVolumes: o.withVolumes,
    userdata,
    leaveRunning: true,
    wrap,
    signal: ctx.signal,
  });
  let settled = false;
  checkpointing.then(() => settled = true, () => settled = true);
  let released: Promise<number> | undefined;
  const release = () =>
    released ??= dumpCriuVersion(userdata).then((criuVersion) =>
      closeLazyDump(listen, { criuVersion })
    );
  try {
    await untilListening(listen.port, () => settled);
    phases.dump_ms = performance.now() - t0;
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    const imagesDir = `${userdata}/checkpoint`;
    const images = await readDumpDir(imagesDir, true);
    const manifest = new ManifestBuilder();
    const finals = new Map<string, Uint8Array>();
    let pages = 0;
    let scanMs = 0;
    for (const mem of images.memory) {
      const host = hostOf.get(mem.pid);
      if (host === undefined) throw new Error(`pid ${mem.pid} of the dump has no host pid`);
      const runs = lazyRuns(mem.pagemap);
      if (runs.length > 0) {
        const t = performance.now();
        const changed = await scanChanged(host, runs, heldIndex(ctx.ledger.held(mem.pid)));
        scanMs += performance.now() - t;
        const reader = new PageReader(host);
        try {
          const sent = await sendLivePages(channel, reader, mem.pid, changed);
          if (sent !== changed.length) {
            throw new Error(`pid ${mem.pid}: ${changed.length - sent} changed pages unreadable`);
          }
          pages += sent;
        } finally {
          reader.close();
        }
      }
      pages += await sendChangedPages(
        channel,
        mem.pid,
        mem.addresses,
        `${imagesDir}/${mem.pagesFile}`,
        ctx.ledger.held(mem.pid),
      );
      const final = presentAndLazy(mem.pagemap);
      finals.set(mem.pagemapFile, encodePagemap(final));
      addFromLedger(manifest, mem.pid, storedAddresses(final), ctx.ledger.held(mem.pid));
    }
    phases.scan_ms = scanMs;
    // the memory is read: CRIU may finish (the tasks stay stopped), podman writes its export
    const releaseAt = performance.now();
    const answer = await release();
    if (answer !== 0) throw new Error(`the lazy dump's page server answered ${answer}`);
    const ck: PodmanCheckpoint = await checkpointing;
    phases.release_ms = performance.now() - releaseAt;
    // (podman's frozen_time statistic is meaningless for a lazy dump: the dump's own part)
    phases.freeze_ms = phases.dump_ms;
    for (const [name, bytes] of finals) await Deno.writeFile(`${ck.imagesDir}/${name}`, bytes);
    const sent = await sendDumpVerified({
      channel,
      dir: ck.imagesDir,
      ledger: ctx.ledger,
      verify: ctx.verify,
      processPages: false,
      manifest,
      lazyDump: true,
    });
    pages += sent.pages;
    const files = await sendPodmanFiles(ck, (name, data) => channel.sendFile(name, data));
    await channel.flush();
    // the scan and the release are phases of their own (the phases add up to the downtime)
    phases.transfer_ms = performance.now() - transferAt - scanMs - (phases.release_ms ?? 0);
    return {
      request: podmanRestoreRequest({ o, roots, ck, files, sent, tcp: ctx.tcp }),
      pages,
      phases,
      dumpDir: ck.imagesDir,
      drain: () => removeSourceAfterCommit(o),
      // the container runs on in podman's view: the driver's rollback resumes its tasks
      stop: () => channel.abort("source rolls back").then(() => {}, () => {}),
    };
  } catch (e) {
    // let a waiting dump finish (it leaves the tasks stopped: the driver resumes them)
    await release().catch(() => 0);
    await checkpointing.catch(() => {});
    throw e;
  }
}

/**
 * Wait until something listens on loopback TCP `port` (the dump's page server: looking, not
 * connecting, since a connection is the page server's one client), or `gaveUp()`.
 */
async function untilListening(port: number, gaveUp: () => boolean): Promise<void> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  const until = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < until) {
    const table = await Deno.readTextFile("/proc/net/tcp").catch(() => "");
    for (const line of table.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(hex.trim()) && f[3] === "0A") return;
    }
    if (gaveUp()) throw new Error("podman's checkpoint ended before its lazy page server started");
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("the lazy dump's page server never started");
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * The CRIU version podman's checkpoint runs, which fixes the page server's wire format (CRIU 4.2
 * grew its command from 24 to 32 bytes). The dump log's first line names it; runc writes that log
 * in its work path, the container's userdata. Without a readable log: the version of u2cm's own
 * CRIU, the one runtimes get first on PATH.
 */
async function dumpCriuVersion(userdata: string): Promise<string | undefined> {
  for (const log of [`${userdata}/dump.log`, `${userdata}/checkpoint/dump.log`]) {
    const version = await criuVersionOfLog(log);
    if (version) return version;
  }
  return await criuVersionOf();
}
