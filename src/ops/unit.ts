/**
 * The `u2cm-agent.service` systemd unit. What CRIU needs shapes it (each point measured with
 * CRIU 4.1.1 on this project's kernel, see the ops report):
 *
 * - No option that gives the agent a mount namespace of its own (ProtectSystem, ProtectHome,
 *   PrivateTmp, PrivateDevices, ProtectKernel*, ProtectControlGroups, ReadWritePaths, …): CRIU
 *   then sees workloads in the host namespace as foreign, dumps their mounts, and the restore
 *   fails (`mnt: BUG at criu/mount.c:48`); restored workloads would also inherit the sandbox.
 * - No NoNewPrivileges and no seccomp-based option (SystemCallFilter, RestrictAddressFamilies,
 *   MemoryDenyWriteExecute, LockPersonality, Restrict*): both are inherited by every restored
 *   workload and cannot be dropped (a restore under no_new_privs yields `NoNewPrivs: 1`).
 * - The capability bounding set must hold every capability a restored workload holds: a restore
 *   into a narrower set fails. The default is CRIU's needs plus the OCI runtime default set.
 * - KillMode=process and Delegate=yes: restored workloads live in the agent's cgroup; restarting
 *   the agent must not kill them, and the engine creates sub-cgroups for throttling.
 *
 * @module
 */

/**
 * Capabilities CRIU uses to dump and restore process trees: ptrace and /proc/PID/map_files
 * (SYS_PTRACE, CHECKPOINT_RESTORE), pid control, namespaces, mounts, prctl(PR_SET_MM) and seccomp
 * (SYS_ADMIN), credentials (SETUID, SETGID, SETPCAP), files of any owner (DAC_OVERRIDE,
 * DAC_READ_SEARCH, FOWNER, CHOWN, FSETID, MKNOD), rlimits and big pipes (SYS_RESOURCE), network
 * namespaces and TCP repair (NET_ADMIN, NET_RAW), root and cwd (SYS_CHROOT), scheduling
 * (SYS_NICE), locked memory and SysV IPC (IPC_LOCK, IPC_OWNER), signals (KILL), loginuid
 * (AUDIT_CONTROL).
 */
export const CRIU_CAPABILITIES = [
  "CAP_CHECKPOINT_RESTORE",
  "CAP_SYS_ADMIN",
  "CAP_SYS_PTRACE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_CHROOT",
  "CAP_SYS_NICE",
  "CAP_KILL",
  "CAP_SETUID",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_CHOWN",
  "CAP_FSETID",
  "CAP_MKNOD",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_AUDIT_CONTROL",
] as const;

/**
 * The OCI runtime default capability set (runc, crun, podman, docker): containers started with
 * defaults hold these, so the agent must too to restore them.
 */
export const CONTAINER_DEFAULT_CAPABILITIES = [
  "CAP_AUDIT_WRITE",
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_MKNOD",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_RAW",
  "CAP_SETFCAP",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_SETUID",
  "CAP_SYS_CHROOT",
] as const;

/** The default bounding set: CRIU's needs and the container default set, sorted. */
export function defaultCapabilities(): string[] {
  return [...new Set<string>([...CRIU_CAPABILITIES, ...CONTAINER_DEFAULT_CAPABILITIES])].sort();
}

/** Inputs of {@linkcode renderUnit}. */
export interface UnitOptions {
  /** The `u2cm` executable (binary or wrapper). */
  binary: string;
  /** The configuration file passed to the agent. */
  config: string;
  /** The state directory (identity, peers, migrations). */
  stateDir: string;
  /** The cache directory (extracted shim, private CRIU prefix). */
  cacheDir: string;
  /** Capability bounding set; "all" leaves it unrestricted. @default defaultCapabilities() */
  capabilities?: readonly string[] | "all";
}

/** The text of `u2cm-agent.service`. */
export function renderUnit(options: UnitOptions): string {
  const { binary, config, stateDir, cacheDir, capabilities = defaultCapabilities() } = options;
  const caps = capabilities === "all"
    ? ['# CapabilityBoundingSet unrestricted (config: "capabilities": "all")']
    : [`CapabilityBoundingSet=${[...capabilities].join(" ")}`];
  return [
    "[Unit]",
    "Description=u2cm agent: predictive live migration of process trees between edge nodes",
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=exec",
    `ExecStart=${quote(binary)} agent --config ${quote(config)}`,
    `Environment=${quote(`U2CM_STATE_DIR=${stateDir}`)}`,
    `Environment=${quote(`U2CM_CACHE=${cacheDir}`)}`,
    "Restart=on-failure",
    "RestartSec=2s",
    "TimeoutStopSec=30s",
    "# Restored workloads live in this cgroup: stopping the agent must not kill them.",
    "KillMode=process",
    "Delegate=yes",
    "TasksMax=infinity",
    "LimitNOFILE=1048576",
    "LimitMEMLOCK=infinity",
    ...caps,
    "# No mount namespace, no_new_privs or seccomp sandboxing: CRIU and the workloads it",
    "# restores cannot run under them (see src/ops/unit.ts).",
    "UMask=0077",
    "KeyringMode=private",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Quote a value for a unit file when it holds spaces or quotes. */
function quote(value: string): string {
  return /[\s"'\\]/.test(value) ? `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : value;
}
