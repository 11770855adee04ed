/**
 * What the arm64 lane runs under qemu-user, and why the other test files stay on x86_64. Inside
 * the files it runs, a test that needs a capability the lane lacks says so itself
 * (`testNeeding` in tests/support/env.ts); the files listed in {@linkcode NOT_IN_LANE} need such
 * capabilities throughout, or are too slow under emulation for the lane's budget.
 *
 * @module
 */

/** The test files the lane runs on aarch64, in order. */
export const LANE_FILES = [
  "tests/arch/compare_test.ts",
  "tests/arch/cross_arch_test.ts",
  "tests/arch/doctor_test.ts",
  "tests/native/codec_test.ts",
  "tests/tracker/softdirty_test.ts",
  "tests/trace/format_test.ts",
  "tests/util/varint_test.ts",
  "tests/util/base64_test.ts",
  "tests/util/child_output_test.ts",
  "tests/predict/phase1_test.ts",
  "tests/predict/history_test.ts",
  "tests/predict/window_rates_test.ts",
  "tests/predict/model_provider_test.ts",
  "tests/sim/bitmap_test.ts",
  "tests/sim/timeline_test.ts",
  "tests/peer/frames_test.ts",
  "tests/peer/protocol_test.ts",
  "tests/peer/container_check_test.ts",
  "tests/peer/page_index_test.ts",
  "tests/peer/page_store_test.ts",
  "tests/peer/resend_buffer_test.ts",
  "tests/peer/ws_codec_test.ts",
  "tests/peer/loopback_test.ts",
  "tests/report/render_test.ts",
];

/** The share of each property test's fast-check runs the lane makes (`propertyRuns`). */
export const PROPERTY_RUNS_SCALE = 0.05;

/** The files the cross-architecture comparison runs natively first, as the reference. */
export const REFERENCE_FILES = ["tests/arch/cross_arch_test.ts", "tests/arch/slices_test.ts"];

/** Test files left out of the lane, by prefix, with the reason (one summary line each). */
export const NOT_IN_LANE: { files: string[]; reason: string }[] = [
  {
    files: ["tests/arch/slices_test.ts"],
    reason: "decodes whole corpus traces (a minute each under qemu); the lane runs it natively " +
      "with the x86_64 reference",
  },
  {
    files: ["tests/arch/cli_in_process_test.ts"],
    reason: "checks natively that the CLI commands tests/arch/ runs in-process print what real " +
      "u2cm children print (4 children, about 25 s each under qemu); tests/arch/doctor_test.ts " +
      "runs the real entry point on aarch64",
  },
  {
    files: ["tests/tracker/tracker_test.ts", "tests/cli/trace_test.ts", "tests/history/"],
    reason: "track live processes: need process_vm_readv of other processes, which qemu-user " +
      "does not emulate",
  },
  {
    files: [
      "tests/engine/",
      "tests/criu/",
      "tests/cli/migrate_test.ts",
      "tests/cli/doctor_test.ts",
      "tests/cli/interactive_test.ts",
      "tests/cli/recover_test.ts",
      "tests/cli/doctor_runtimes_test.ts",
      "tests/container/",
      "tests/ops/proctree_test.ts",
    ],
    reason: "need CRIU for the architecture Deno runs as (directly or through podman, runc and " +
      "crun): CRIU cannot run under qemu-user (it ptraces and injects code into the processes " +
      "it dumps)",
  },
  {
    files: ["tests/peer/auth_test.ts"],
    reason: "three of its tests wait 5–10 s for a TLS handshake or a reply, which emulation on " +
      "a loaded machine exceeded; tests/peer/loopback_test.ts authenticates two arm64 processes",
  },
  {
    files: ["tests/peer/ws_client_test.ts"],
    reason: "times 200 WebSocket handshakes against a server in a Deno child of its own (a " +
      "child costs about 25 s under qemu, and the race it guards needs native timing); x86_64 " +
      "runs it",
  },
  {
    files: ["tests/peer/tunnel_test.ts"],
    reason: "its agent and client share one emulated process: under load the agent went 8 s " +
      "without answering (the client's dead-peer bound) and the client could not resume within " +
      "its 30 s; tests/peer/loopback_test.ts moves a migration between two arm64 processes",
  },
  {
    files: ["tests/peer/compression_test.ts"],
    reason: "its auto-mode test assumes LZ4 runs faster than 16 MiB/s, which the emulated shim " +
      "did not reach here, and its channel tests move 16 MiB; tests/peer/loopback_test.ts sends " +
      "LZ4-compressed frames between two arm64 processes instead",
  },
  {
    files: ["tests/peer/netns_test.ts", "tests/peer/compression_netns_test.ts"],
    reason: "need network namespaces with tc-shaped links; their 64–256 MiB transfers at 100 " +
      "Mbit would take far beyond the lane's budget under qemu",
  },
  {
    files: [
      "tests/peer/aead_test.ts",
      "tests/peer/bulk_server_test.ts",
      "tests/peer/bulk_test.ts",
      "tests/peer/sealed_records_test.ts",
    ],
    reason: "cannot run: the sealed bulk stream needs the system's libcrypto.so.3, and the " +
      "lane's aarch64 sysroot (/usr/aarch64-linux-gnu) has none",
  },
  {
    files: [
      "tests/peer/process_test.ts",
      "tests/peer/resume_test.ts",
      "tests/peer/quic_test.ts",
      "tests/peer/channel_test.ts",
      "tests/sim/simulate_test.ts",
      "tests/sim/pinned_test.ts",
      "tests/cli/simulate_test.ts",
      "tests/predict/online_test.ts",
      "tests/predict/frequencies_test.ts",
      "tests/predict/model_card_test.ts",
    ],
    reason: "too slow under qemu for the lane's budget (simulate_test > 9 min, whole corpus " +
      "traces, each ONNX model load minutes, 256 MiB–2 GB transfers); tests/arch/ and " +
      "tests/peer/loopback_test.ts cover the same code on small inputs",
  },
  {
    files: [
      "tests/predict/baselines_test.ts",
      "tests/predict/predict_eval_test.ts",
      "tests/report/chromium_test.ts",
      "tests/cli/agent_test.ts",
      "tests/cli/install_test.ts",
      "tests/cli/peer_test.ts",
      "tests/native/embedded_test.ts",
      "tests/ops/",
      "tests/build/",
      "tests/cli/readme_test.ts",
    ],
    reason: "host tooling rather than u2cm's arch-dependent code (python3, chromium, systemd, " +
      "tmux, deno compile, the installer); x86_64 runs them",
  },
];

/** The reason a file is not in the lane, or undefined when no entry names it. */
export function notInLaneReason(file: string): string | undefined {
  return NOT_IN_LANE.find((e) => e.files.some((f) => file.startsWith(f)))?.reason;
}
