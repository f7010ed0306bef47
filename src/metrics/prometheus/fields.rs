//! The metric families drawn from the snapshot's scalars, its track lists, its
//! `connections` and its `realtime` table (HTTP thread).

use super::{Field, Scale, counter, gauge};

pub(super) const SCALARS: &[Field] = &[
    gauge(
        "currentSpeakerBufferDepthInFloat32Samples",
        "izyrt_current_speaker_buffer_depth_float32_samples",
        Scale::One,
        "Samples (frames x channels) queued for the speaker.",
    ),
    gauge(
        "currentSpeakerSampleRate",
        "izyrt_current_speaker_sample_rate_hertz",
        Scale::One,
        "Sample rate of the speaker stream.",
    ),
    gauge(
        "speakerScriptProcessorLatencyMS",
        "izyrt_speaker_latency_seconds",
        Scale::Milli,
        "Speaker-path latency: jitter buffer plus device buffer.",
    ),
    gauge(
        "speakerScriptProcessorIncomingBufferMisses",
        "izyrt_speaker_incoming_buffer_misses",
        Scale::One,
        "Periods the speaker needed audio the jitter buffer did not have; reset while the speaker is silent and when the hub input stops (the seed's count).",
    ),
    counter(
        "speakerIncomingBufferMissesTotal",
        "izyrt_speaker_incoming_buffer_misses_total",
        "Periods the speaker needed audio the jitter buffer did not have, since the start (never reset).",
    ),
    gauge(
        "speakerSilenceDetected",
        "izyrt_speaker_silence_detected",
        Scale::One,
        "1 while the incoming mix is silent for the hold time.",
    ),
    gauge(
        "clockRatioPpm",
        "izyrt_clock_ratio_ppm",
        Scale::One,
        "The client's estimate of the hub's clock against its device's, ppm (positive: the hub runs fast).",
    ),
    gauge(
        "resampleRatio",
        "izyrt_resample_ratio",
        Scale::One,
        "Hub frames played per device frame: the clock estimate plus any latency move.",
    ),
    gauge(
        "captureCorrectionPpm",
        "izyrt_capture_correction_ppm",
        Scale::One,
        "What a peer's capture adds to its clock estimate to hold its input at the hub at the hub's target, ppm (positive: sends more).",
    ),
    gauge(
        "hubInputExcessFrames",
        "izyrt_hub_input_excess_frames",
        Scale::One,
        "Where the hub last said this client's input stands against its target, frames (negative: short).",
    ),
    gauge(
        "locked",
        "izyrt_clock_locked",
        Scale::One,
        "1 while the client's clock loop is locked to the hub's clock.",
    ),
    counter(
        "concealedFrames",
        "izyrt_speaker_concealed_frames_total",
        "Frames of missing audio the speaker filled with a fading continuation.",
    ),
    counter(
        "rejoinsInPhase",
        "izyrt_speaker_rejoins_in_phase_total",
        "Gaps at the speaker that rejoined the stream in phase with their concealment.",
    ),
    gauge(
        "latencyTargetFrames",
        "izyrt_speaker_latency_target_frames",
        Scale::One,
        "Audio the client's clock loop keeps queued, frames (from measured packet lateness).",
    ),
];

pub(super) const INCOMING: &[Field] = &[
    gauge(
        "connected",
        "izyrt_incoming_track_connected",
        Scale::One,
        "1 while the received track is connected.",
    ),
    gauge(
        "seq",
        "izyrt_incoming_track_seq",
        Scale::One,
        "Last sequence number received on the track.",
    ),
    counter(
        "packets",
        "izyrt_incoming_track_packets_total",
        "Packets received on the track.",
    ),
    counter(
        "seqGaps",
        "izyrt_incoming_track_seq_gaps_total",
        "Sequence gaps seen on the received track.",
    ),
    gauge(
        "msSinceSeqAdvance",
        "izyrt_incoming_track_since_seq_advance_seconds",
        Scale::Milli,
        "Time since the track's sequence number last advanced.",
    ),
    gauge(
        "latencyMs",
        "izyrt_incoming_track_latency_seconds",
        Scale::Milli,
        "Latency of the received track.",
    ),
];

pub(super) const OUTGOING: &[Field] = &[
    gauge(
        "seq",
        "izyrt_outgoing_track_seq",
        Scale::One,
        "Last sequence number sent on the track.",
    ),
    counter(
        "packets",
        "izyrt_outgoing_track_packets_total",
        "Packets sent on the track.",
    ),
    counter(
        "droppedPackets",
        "izyrt_outgoing_track_dropped_packets_total",
        "Packets dropped because the socket was full.",
    ),
];

pub(super) const CONNECTIONS: &[Field] = &[
    gauge(
        "connected",
        "izyrt_connection_connected",
        Scale::One,
        "1 while the user's connection is up.",
    ),
    gauge(
        "sampleRate",
        "izyrt_connection_sample_rate_hertz",
        Scale::One,
        "Sample rate announced on the connection.",
    ),
    gauge(
        "channels",
        "izyrt_connection_channels",
        Scale::One,
        "Channels announced on the connection.",
    ),
    gauge(
        "framesPerPacket",
        "izyrt_connection_frames_per_packet",
        Scale::One,
        "Frames per packet announced on the connection.",
    ),
    gauge(
        "rttMs",
        "izyrt_connection_rtt_seconds",
        Scale::Milli,
        "Round-trip time measured on the connection.",
    ),
    gauge(
        "driftPpm",
        "izyrt_connection_drift_ppm",
        Scale::One,
        "Drift of the user's stream against the hub's clock, ppm (about 0 for a client that locks).",
    ),
    gauge(
        "senderLocked",
        "izyrt_connection_sender_locked",
        Scale::One,
        "1 while the user's packets say it resamples them to the hub's clock (AUDIO flag CLOCK_LOCKED).",
    ),
    gauge(
        "jitterDepthFrames",
        "izyrt_connection_jitter_depth_frames",
        Scale::One,
        "Frames of the user's input queued in the hub's jitter buffer.",
    ),
    gauge(
        "jitterTargetFrames",
        "izyrt_connection_jitter_target_frames",
        Scale::One,
        "The depth the hub's jitter buffer keeps for the user's input, frames.",
    ),
    gauge(
        "jitterFloorFrames",
        "izyrt_connection_jitter_floor_frames",
        Scale::One,
        "Of the target, what the input's measured lateness of the last 32 s holds, frames.",
    ),
    counter(
        "trimmedFrames",
        "izyrt_connection_trimmed_frames_total",
        "Frames the hub trimmed from the user's input because its clock ran fast.",
    ),
    counter(
        "concealedFrames",
        "izyrt_connection_concealed_frames_total",
        "Frames of the user's input the hub filled with a fading continuation.",
    ),
    counter(
        "senderSkippedFrames",
        "izyrt_connection_sender_skipped_frames_total",
        "Frames of stream time the user's packets skipped over: audio its device lost, sent as a gap.",
    ),
    counter(
        "resumesInPhase",
        "izyrt_connection_resumes_in_phase_total",
        "Gaps in the user's input that ended in phase with their concealment.",
    ),
    counter(
        "lagSearchesSkipped",
        "izyrt_connection_lag_searches_skipped_total",
        "Gaps in the user's input whose concealment's lag search the mixer's per-period budget did not allow.",
    ),
];

pub(super) const REALTIME: &[Field] = &[
    gauge(
        "p50Us",
        "izyrt_realtime_wakeup_latency_p50_seconds",
        Scale::Micro,
        "Median wakeup latency of the RT thread.",
    ),
    gauge(
        "p99Us",
        "izyrt_realtime_wakeup_latency_p99_seconds",
        Scale::Micro,
        "99th percentile wakeup latency of the RT thread.",
    ),
    gauge(
        "p999Us",
        "izyrt_realtime_wakeup_latency_p999_seconds",
        Scale::Micro,
        "99.9th percentile wakeup latency of the RT thread.",
    ),
    gauge(
        "maxUs",
        "izyrt_realtime_wakeup_latency_max_seconds",
        Scale::Micro,
        "Maximum wakeup latency of the RT thread.",
    ),
    gauge(
        "work.p50Us",
        "izyrt_realtime_work_p50_seconds",
        Scale::Micro,
        "Median time the RT thread's work took per period (not counting the wait for the device).",
    ),
    gauge(
        "work.p99Us",
        "izyrt_realtime_work_p99_seconds",
        Scale::Micro,
        "99th percentile time the RT thread's work took per period.",
    ),
    gauge(
        "work.p999Us",
        "izyrt_realtime_work_p999_seconds",
        Scale::Micro,
        "99.9th percentile time the RT thread's work took per period.",
    ),
    gauge(
        "work.maxUs",
        "izyrt_realtime_work_max_seconds",
        Scale::Micro,
        "Longest time the RT thread's work took in one period.",
    ),
    gauge(
        "priority",
        "izyrt_realtime_priority",
        Scale::One,
        "Scheduling priority actually obtained by the RT thread.",
    ),
    gauge(
        "deviceThread.priority",
        "izyrt_realtime_device_thread_priority",
        Scale::One,
        "Scheduling priority of the device's own thread that runs the RT thread's periods (JACK's process thread); absent when the RT thread runs them.",
    ),
    counter(
        "xruns",
        "izyrt_realtime_xruns_total",
        "Xruns (underruns and overruns) of the RT thread.",
    ),
    counter(
        "lostFrames",
        "izyrt_realtime_lost_frames_total",
        "Frames of stream time that the RT thread's device faults skipped.",
    ),
    counter(
        "steadyAllocations",
        "izyrt_realtime_steady_allocations_total",
        "Allocator calls of the RT thread in steady state (anything but 0 is a bug); absent before the counter arms.",
    ),
    counter(
        "recoveryAllocations",
        "izyrt_realtime_recovery_allocations_total",
        "Allocator calls of the RT thread in its device's recoveries and the 10 periods after each (0 on xruns of virtual; an ALSA plugin's restart adds its own).",
    ),
];
