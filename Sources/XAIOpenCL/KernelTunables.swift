import Foundation

/// The kernels' tunables for one device, decided once when a backend opens it. The same values
/// produce the `-D` build options and the launch geometry, so a kernel's `reqd_work_group_size`
/// and the host's launch cannot disagree.
struct KernelTunables: Sendable, Equatable {
    /// Which GEMM kernel convolutions and matrix products use.
    enum GEMMVariant: String, Sendable {
        /// `gemm_tiled`: local-memory tiles (GPUs).
        case tiled
        /// `gemm_rows` / `gemm_dot`: barrier-free register blocks (CPU devices such as PoCL).
        case rows
    }

    /// `gemm_tiled`: a work-group computes a `tile x tile` block of C, each work-item a
    /// `workPerThread x workPerThread` register block, stepping through K in slices of `kSlice`.
    var tile = 64, workPerThread = 4, kSlice = 16
    /// `gemm_rows`: rows of C per work-item.
    var cpuRows = 8
    /// `reduce_forward_group`: work-items per output (a power of two).
    var reduceGroup: Int
    var gemm: GEMMVariant
    /// Work-group shape of the `gemm_rows`/`gemm_dot` launches; `nil` lets the driver choose.
    var rowsLocal: [Int]?

    /// Work-items per side of a `gemm_tiled` work-group.
    var workGroupSide: Int { tile / workPerThread }

    /// Build options: the language version and every tunable a kernel reads.
    var buildOptions: String {
        "-cl-std=CL1.2 -DTS=\(tile) -DWPT=\(workPerThread) -DTK=\(kSlice) -DCPU_ROWS=\(cpuRows) -DREDUCE_GROUP=\(reduceGroup)"
    }

    /// The tunables for a device. `XAI_GEMM_KERNEL=tiled|rows` overrides the GEMM choice when
    /// `requested` is `nil`; `XAI_GEMM_ROWS_LOCAL=N` sets the rows kernels' work-group (0: driver's choice).
    init(isGPU: Bool, requested: GEMMVariant?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        reduceGroup = isGPU ? 256 : 64
        gemm = requested ?? environment["XAI_GEMM_KERNEL"].flatMap(GEMMVariant.init(rawValue:)) ?? (isGPU ? .tiled : .rows)
        if let text = environment["XAI_GEMM_ROWS_LOCAL"], let v = Int(text), v >= 0 {
            rowsLocal = v == 0 ? nil : [v, 1, 1]
        } else {
            rowsLocal = [1, 1, 1]
        }
    }
}
