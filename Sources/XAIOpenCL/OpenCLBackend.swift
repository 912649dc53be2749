import COpenCL
import Foundation
import XAICore
import XAIKernels

/// Device memory of an ``OpenCLBackend``; returned to the backend's pool when released.
final class OpenCLStorage: DeviceStorage, @unchecked Sendable {
    let mem: cl_mem
    let bytes: Int
    let pool: CLBufferPool
    /// Where this buffer's guard starts (bytes) and its canary, when the backend guards its buffers.
    let guardOffset: Int?
    let canary: UInt32
    let guards: BufferGuards?

    init(mem: cl_mem, bytes: Int, pool: CLBufferPool, guardOffset: Int? = nil, canary: UInt32 = 0, guards: BufferGuards? = nil) {
        self.mem = mem
        self.bytes = bytes
        self.pool = pool
        self.guardOffset = guardOffset
        self.canary = canary
        self.guards = guards
    }

    deinit {
        if let guards, let guardOffset { guards.verify(mem, from: guardOffset, to: bytes, canary: canary) }
        pool.give(mem, bytes)
    }
}

/// A testing aid: with `OpenCLBackend.guardFloats` set, every buffer gets that many floats past its
/// end filled with a canary, and a buffer whose canary changed by the time it is released was
/// written past its end by a kernel (a bounds check off by one, a global size rounded up without
/// one). Out-of-bounds writes are invisible in results on most devices, so only this sees them.
final class BufferGuards: @unchecked Sendable {
    private let queue: cl_command_queue
    private let lock = NSLock()
    private var found: [String] = []
    private var count: UInt32 = 0

    init(queue: cl_command_queue) {
        clRetainCommandQueue(queue)
        self.queue = queue
    }

    deinit { clReleaseCommandQueue(queue) }

    /// Buffers written past their end so far (their sizes and the first changed word), then cleared.
    func takeViolations() -> [String] {
        lock.lock(); defer { lock.unlock() }
        defer { found = [] }
        return found
    }

    /// A canary for the next buffer: a large negative float that no kernel computes, different for
    /// every buffer (a NaN would survive arithmetic on itself, and one pattern for all would
    /// survive a copy from one guard into another).
    func nextCanary() -> UInt32 {
        lock.lock(); defer { lock.unlock() }
        count &+= 1
        return 0xF100_0000 | (count & 0xF_FFFF)
    }

    func fill(_ mem: cl_mem, from offset: Int, to end: Int, canary: UInt32) -> cl_int {
        var pattern = canary
        return clEnqueueFillBuffer(queue, mem, &pattern, 4, offset, end - offset, 0, nil, nil)
    }

    func verify(_ mem: cl_mem, from offset: Int, to end: Int, canary: UInt32) {
        var words = [UInt32](repeating: 0, count: (end - offset) / 4)
        let status = words.withUnsafeMutableBytes { clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), offset, $0.count, $0.baseAddress, 0, nil, nil) }
        guard status == CL_SUCCESS else { return }
        if let first = words.firstIndex(where: { $0 != canary }) {
            lock.lock()
            found.append("a buffer of \(offset / 4) floats was written at float \(offset / 4 + first) (value \(Float(bitPattern: words[first])))")
            lock.unlock()
        }
    }
}

/// Released buffers by exact size, up to a cap, so that repeated passes reuse device memory.
final class CLBufferPool: @unchecked Sendable {
    private var free: [Int: [cl_mem]] = [:]
    private var cached = 0
    private let capacity: Int
    private let lock = NSLock()

    init(capacity: Int) { self.capacity = capacity }

    func take(_ bytes: Int) -> cl_mem? {
        lock.lock(); defer { lock.unlock() }
        guard let m = free[bytes]?.popLast() else { return nil }
        cached -= bytes
        return m
    }

    func give(_ mem: cl_mem, _ bytes: Int) {
        lock.lock()
        if cached + bytes <= capacity {
            free[bytes, default: []].append(mem)
            cached += bytes
            lock.unlock()
        } else {
            lock.unlock()
            clReleaseMemObject(mem)
        }
    }

    deinit { for list in free.values { for m in list { clReleaseMemObject(m) } } }
}

/// A kernel argument.
enum KernelArg {
    case buffer(cl_mem)
    case int(Int)
    case float(Float)
    /// Up to 8 integers as an OpenCL `int8` vector (unused lanes are 0).
    case intVector8([Int])
    /// Up to 4 integers as an OpenCL `int4` vector.
    case intVector4([Int])
}

/// Transfer counters behind a lock (backends are used from several threads).
final class Counted: @unchecked Sendable {
    private var value = TransferCounters()
    private let lock = NSLock()
    func read() -> TransferCounters { lock.lock(); defer { lock.unlock() }; return value }
    func update(_ change: (inout TransferCounters) -> Void) { lock.lock(); defer { lock.unlock() }; change(&value) }
}

/// The OpenCL backend: every primitive as an OpenCL C kernel from `Kernels/`, compiled once per
/// (device, source hash, options) and cached; one in-order queue; a buffer pool. Runs on any
/// OpenCL 1.2 device: NVIDIA, AMD and Intel GPUs, and PoCL on a CPU.
/// The pinned staging buffer of one backend: allocated on first use with `CL_MEM_ALLOC_HOST_PTR`,
/// mapped once and kept mapped, grown when a larger transfer needs it; one transfer at a time.
final class Staging: @unchecked Sendable {
    private var buffer: cl_mem?
    private var host: UnsafeMutableRawPointer?
    private var size = 0
    private var queue: cl_command_queue?
    private let lock = NSLock()

    /// Runs `body` with a pinned buffer of at least `bytes` bytes, or `nil` for 0 bytes or when the
    /// device gives none (the transfer then uses pageable memory).
    func withBuffer(_ bytes: Int, backend: OpenCLBackend, _ body: ((UnsafeMutableRawPointer, Int)?) throws -> Void) throws {
        lock.lock(); defer { lock.unlock() }
        guard bytes > 0 else { return try body(nil) }
        if size < bytes {
            release()
            var err: cl_int = 0
            let flags = cl_mem_flags(CL_MEM_READ_WRITE) | cl_mem_flags(CL_MEM_ALLOC_HOST_PTR)
            if let b = clCreateBuffer(backend.context, flags, bytes, nil, &err), err == CL_SUCCESS {
                let p = clEnqueueMapBuffer(backend.queue, b, cl_bool(CL_TRUE), cl_map_flags(CL_MAP_READ) | cl_map_flags(CL_MAP_WRITE), 0, bytes, 0, nil, nil, &err)
                if err == CL_SUCCESS, let p {
                    (buffer, host, size, queue) = (b, p, bytes, backend.queue)
                } else {
                    clReleaseMemObject(b)
                }
            }
        }
        guard buffer != nil, let host else { return try body(nil) }
        try body((host, size))
    }

    private func release() {
        if let buffer {
            if let host, let queue {
                clEnqueueUnmapMemObject(queue, buffer, host, 0, nil, nil)
                clFinish(queue)
            }
            clReleaseMemObject(buffer)
        }
        (buffer, host, size) = (nil, nil, 0)
    }

    /// Unmaps and frees the buffer while the backend's queue still exists.
    func releaseNow() { lock.lock(); defer { lock.unlock() }; release() }
}

/// Launches recorded for a kernel profile, behind a lock.
final class RecordedLaunches: @unchecked Sendable {
    private var launches: [(String, cl_event)] = []
    private let lock = NSLock()
    func add(_ name: String, _ event: cl_event) { lock.lock(); defer { lock.unlock() }; launches.append((name, event)) }
    func take() -> [(String, cl_event)] { lock.lock(); defer { lock.unlock() }; defer { launches = [] }; return launches }
}

/// The tile a launch of the GEMM-family kernels was sized for: its program is built with it.
enum LaunchTiles: Equatable, CustomStringConvertible {
    case tiled(GEMMConfig), mma(MMATiling)
    var description: String {
        switch self {
        case .tiled(let config): return "\(config)"
        case .mma(let tiling): return "mma \(tiling)"
        }
    }
}

public final class OpenCLBackend: Backend, CountsTransfers, ProfilesKernels, @unchecked Sendable {
    public let info: OpenCLDeviceInfo
    public let device: Device
    public let name: String
    public let memoryBudget: Int
    /// Every primitive has a kernel.
    public func supports(_ primitive: Primitive) -> Bool {
        // The noise's bits depend on a correctly rounded division and square root.
        primitive != .noise || info.correctlyRoundedDivideSqrt
    }
    public var details: BackendDetails {
        let i = info
        let memory = String(format: "%.1f GiB", Double(i.globalMemoryBytes) / Double(1 << 30))
        var convolutions: String
        if let tensorCores {
            convolutions = convolutionPolicy.tensorCoreSummary(tensorCores, source: convolutionLoweringSource)
        } else {
            convolutions = convolutionPolicy.summary(gemm: tunables.gemm, source: convolutionLoweringSource)
        }
        convolutions += (fastConvolutions ? "; Winograd \(forcedWinogradTile.map { "\($0)" } ?? "F(2x2, 3x3) or F(4x4, 3x3) per layer") for 3x3 stride-1 layers in forward-only passes" : "")
        let arithmetic = tensorCores.map { "\($0)" } ?? (tensorCoreNote.isEmpty ? "fp32 kernels" : "fp32 kernels (\(tensorCoreNote))")
        return BackendDetails(isGPU: i.isGPU, mayUseFastConvolutions: fastConvolutions, tensorCores: tensorCores != nil, facts: [
            ("device", "\(i.name), \(i.platformName), driver \(i.driverVersion), \(i.computeUnits) compute units at \(i.clockMHz) MHz, \(memory)"
                + (i.isGPU ? "" : " [not a GPU: OpenCL on a CPU, e.g. PoCL]")),
            ("GEMM", "\(gemmConfig) (\(gemmSource))" + (tensorCores != nil || gemmConfig.engine == .tiled ? "; \(tileChoice)" : "")),
            ("convolutions", convolutions),
            ("noise", i.correctlyRoundedDivideSqrt ? "drawn on the device (Philox4x32-10)"
                : "drawn on the host and uploaded: the device cannot round division and square root correctly"),
            ("kernel binaries", ProgramBinaryCache.summary(programCache, isGPU: i.isGPU, reportsBuilds: reportsBuilds)),
        ] + (requestedArithmetic == .fp32 ? [] : [("tensor cores", tensorCores.map { "\($0)" } ?? tensorCoreNote)]),
        algorithms: "\(arithmetic); GEMM \(tensorCores == nil ? "\(gemmConfig) (\(gemmSource))" : "gemm_mma")"
            + (tensorCores != nil || gemmConfig.engine == .tiled ? ", \(tileChoice)" : "") + "; convolutions \(convolutions)")
    }
    let context: cl_context
    let queue: cl_command_queue
    let pool: CLBufferPool
    private var programs: [String: cl_program] = [:]
    private var kernels: [String: (kernel: cl_kernel, maxGroup: Int)] = [:]
    /// `XAI_KERNEL_BUILD_LOG=1`: what the driver says of each program it builds and each kernel it
    /// makes, written to standard error and kept in ``buildReports``: the build log (NVIDIA's with
    /// `-cl-nv-verbose`: ptxas's registers and spill bytes per kernel) and each kernel's private
    /// memory per work-item (`CL_KERNEL_PRIVATE_MEM_SIZE`; on a GPU, what did not stay in registers).
    /// For the GPU check: whether NVIDIA's compiler keeps accumulators in registers.
    var reportsBuilds = ProcessInfo.processInfo.environment["XAI_KERNEL_BUILD_LOG"] == "1"
    private(set) var buildReports: [String] = []

    private func report(_ line: String) {
        buildReports.append(line)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
    private var sources: [String: (text: String, origin: String)] = [:]
    /// Compiled programs kept between processes (``ProgramBinaryCache``: GPUs by default,
    /// `XAI_PROGRAM_CACHE=on|off`); `nil` compiles every program from source.
    var programCache: ProgramBinaryCache?
    /// Programs this backend compiled from source, loaded from ``programCache``, and found refused
    /// by the driver that made them (their entries now say so).
    private(set) var programsCompiled = 0, programsFromCache = 0, programsRefused = 0
    /// Tests: act as a driver whose every build from a program binary ends with this status
    /// (`CL_INVALID_BINARY`: refused; `CL_OUT_OF_RESOURCES`: failed for want of resources).
    var binaryBuildStatus: cl_int?
    private let lock = NSLock()
    /// A 4-byte buffer bound to kernel arguments that a call does not use.
    private(set) var dummy: cl_mem!
    /// The kernels' tunables for this device, fixed at init.
    let tunables: KernelTunables

    /// How this backend multiplies matrices, and where that choice came from (for `xai devices`
    /// and the benchmarks' headers): "requested", "XAI_GEMM_KERNEL", the tuning cache or the
    /// device table.
    public var gemmConfig: GEMMConfig { tunables.gemm }
    public let gemmSource: String
    /// How convolutions reach the GEMM engine, and where that came from (the `convolution:`
    /// argument, `XAI_CONV_LOWERING`, the tuner's table or the default).
    let convolutionPolicy: ConvolutionLoweringPolicy
    public let convolutionLoweringSource: String
    /// Forward-only passes (``XAICore/ConvPlan/exact`` false) may take Winograd for 3x3 stride-1
    /// layers: `--fast`.
    public let fastConvolutions: Bool
    /// Winograd's tile for every layer that takes it; `nil`: per layer (``ConvolutionLoweringPolicy/winograd(for:)``).
    let forcedWinogradTile: WinogradTile?
    /// Each live weight array's Winograd transform, made once (ResNet-50's 3x3 stride-1 layers: 132 MB under F(4x4, 3x3), at most a sixteenth of the memory budget).
    let winogradWeights: WinogradWeightCache
    /// The arithmetic asked for (`--precision`), and the tensor-core GEMMs that run it: `nil` for
    /// fp32, and where the device has none or its probe failed (``tensorCoreNote`` says why).
    public let requestedArithmetic: GEMMArithmetic
    public internal(set) var tensorCores: TensorCores?
    /// Why GEMMs run fp32 although ``requestedArithmetic`` asks for tensor cores ("" otherwise).
    public private(set) var tensorCoreNote = ""
    /// How the tiled and tensor-core kernels pick their tile per launch (same bits either way).
    public internal(set) var tileChoice: TileChoice
    /// The tiled engine's tiles, the configured one first (``GEMMConfig/shrinking``), made once.
    let tiledLadder: [GEMMConfig]

    /// Opens OpenCL device `index` (GPUs first, over all platforms).
    /// - Parameters:
    ///   - index: the device's index over all platforms, GPUs first, as `xai devices` lists them.
    ///   - memoryBudget: bytes methods may use for batches (default: half the device's memory, at most 8 GiB).
    ///   - gemm: the GEMM engine and tile shape. Default: `XAI_GEMM_KERNEL=tiled|rows|clblast` if
    ///     set, else the winner `xai-bench tune` cached for this device, driver and kernel source,
    ///     else ``GEMMDeviceTable``.
    /// - Throws: ``XAIError/deviceUnavailable(device:reason:)`` when there is no such device,
    ///   ``XAIError/invalidArgument(parameter:value:reason:)`` for a GEMM configuration the device
    ///   cannot run, ``XAIError/openCL(call:status:name:device:)`` when the driver refuses a context or queue.
    ///   - profileKernels: record every launch's device time (``takeKernelProfile()``); the queue
    ///     then carries profiling events, which costs a little per launch.
    ///   - convolution: im2col or implicit GEMM for every convolution (same bits); default
    ///     `XAI_CONV_LOWERING`, else per layer (the tuner's table, else ``ConvolutionLowering/defaultChoice(for:backward:)``).
    ///   - fastConvolutions: forward-only passes may use Winograd (not the exact bits; `--fast`).
    ///   - winogradTile: Winograd's tile for every layer (default: `XAI_WINOGRAD_TILE=2|4`, else per
    ///     layer: the tuner's table, else ``WinogradTile/defaultChoice(for:)``).
    ///   - arithmetic: `tf32` or `3xtf32` runs every GEMM on tensor cores (`Kernels/mma.cl`) where the
    ///     device has them and its probe passes (``TensorCores``); else GEMMs stay fp32 and
    ///     ``tensorCoreNote`` says why. `XAI_MMA=emulate` emulates the tensor cores on any device.
    ///   - tensorCorePath: the path to try instead of the device's own (``TensorCores/path(for:environment:)``).
    public init(index: Int = 0, memoryBudget: Int? = nil, gemm: GEMMConfig? = nil, profileKernels: Bool = false,
                convolution: ConvolutionLowering? = nil, fastConvolutions: Bool = false, winogradTile: WinogradTile? = nil,
                arithmetic: GEMMArithmetic = .fp32,
                tensorCorePath: TensorCorePath? = nil) throws {
        let all: [OpenCLDeviceInfo]
        do {
            all = try OpenCLRuntime.devices()
        } catch XAIError.deviceUnavailable(_, let reason) {
            throw XAIError.deviceUnavailable(device: "gpu:\(index)", reason: reason)
        }
        guard index >= 0, index < all.count else {
            throw XAIError.deviceUnavailable(device: "gpu:\(index)", reason: "there \(all.count == 1 ? "is 1 OpenCL device" : "are \(all.count) OpenCL devices") (see `xai devices`)")
        }
        info = all[index]
        let (config, source) = try GEMMTuningCache.choose(for: info, requested: gemm)
        if let problem = config.problem(maxWorkGroupSize: info.maxWorkGroupSize, localMemoryBytes: info.localMemoryBytes) {
            throw XAIError.invalidArgument(parameter: "gemm", value: config.description, reason: "\(problem) (\(source))")
        }
        tunables = KernelTunables(isGPU: info.isGPU, gemm: config)
        tileChoice = try TileChoice.initial(isGPU: info.isGPU, computeUnits: info.computeUnits)
        programCache = try ProgramBinaryCache.forDevice(info)
        tiledLadder = config.shrinking
        gemmSource = source
        self.fastConvolutions = fastConvolutions
        forcedWinogradTile = try winogradTile ?? WinogradTile.requested()
        requestedArithmetic = arithmetic
        (convolutionPolicy, convolutionLoweringSource) = try ConvolutionLoweringPolicy.choose(
            requested: convolution, tableKey: ConvolutionLoweringTable.key(for: info, gemm: config))
        device = .gpu(index)
        name = "opencl:\(index) (\(info.name), \(info.platformName))"
        self.memoryBudget = memoryBudget ?? min(info.globalMemoryBytes / 2, 8 << 30)
        pool = CLBufferPool(capacity: self.memoryBudget / 4)
        winogradWeights = WinogradWeightCache(capacity: self.memoryBudget / 16)
        var err: cl_int = 0
        var dev: cl_device_id? = info.device
        guard let ctx = clCreateContext(nil, 1, &dev, nil, nil, &err), err == CL_SUCCESS else {
            throw XAIError.openCL(call: "clCreateContext", status: err, name: openCLStatusName(err), device: "gpu:\(index)")
        }
        context = ctx
        profilesKernels = profileKernels
        let properties = profileKernels ? cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) : 0
        guard let q = clCreateCommandQueue(ctx, info.device, properties, &err), err == CL_SUCCESS else {
            clReleaseContext(ctx)
            throw XAIError.openCL(call: "clCreateCommandQueue", status: err, name: openCLStatusName(err), device: "gpu:\(index)")
        }
        queue = q
        guards = BufferGuards(queue: q)
        dummy = try createBuffer(4)
        if arithmetic != .fp32 {
            switch tensorCorePath.map({ .success($0) }) ?? TensorCores.path(for: info) {
            case .failure(let why): tensorCoreNote = "\(arithmetic.rawValue) asked for; \(why.reason): GEMMs run fp32"
            case .success(let path):
                let candidate = TensorCores(arithmetic: arithmetic, path: path)
                if let why = Self.probe(candidate, index: index, gemm: config) {
                    tensorCoreNote = "\(arithmetic.rawValue) asked for; \(why): GEMMs run fp32"
                } else {
                    tensorCores = candidate
                }
            }
        }
    }

    deinit {
        staging.releaseNow()
        clFinish(queue)
        for (_, event) in profile.take() { clReleaseEvent(event) }
        for k in kernels.values { clReleaseKernel(k.kernel) }
        for p in programs.values { clReleaseProgram(p) }
        if let dummy { clReleaseMemObject(dummy) }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    var deviceLabel: String { "gpu:\(info.index) (\(info.name))" }

    // MARK: Memory

    func createBuffer(_ bytes: Int, host: UnsafeRawPointer? = nil) throws -> cl_mem {
        var err: cl_int = 0
        let flags = cl_mem_flags(CL_MEM_READ_WRITE) | (host != nil ? cl_mem_flags(CL_MEM_COPY_HOST_PTR) : 0)
        let mem = clCreateBuffer(context, flags, max(bytes, 4), host.map { UnsafeMutableRawPointer(mutating: $0) }, &err)
        guard err == CL_SUCCESS, let mem else {
            if [CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES, CL_OUT_OF_HOST_MEMORY, CL_INVALID_BUFFER_SIZE].contains(err)
                || bytes > info.maxAllocationBytes {
                throw XAIError.outOfMemory(op: "allocate", bytes: bytes, device: deviceLabel)
            }
            throw XAIError.openCL(call: "clCreateBuffer", status: err, name: openCLStatusName(err), device: deviceLabel)
        }
        return mem
    }

    func storage(_ a: DeviceArray, _ op: String) throws -> OpenCLStorage {
        guard let s = a.storage as? OpenCLStorage, s.pool === pool else {
            throw XAIError.wrongDevice(op: op, expected: name, got: String(describing: type(of: a.storage)))
        }
        return s
    }

    func mem(_ a: DeviceArray, _ op: String) throws -> cl_mem { try storage(a, op).mem }

    /// A new array of `shape`, refused before allocating when it exceeds the device's largest allocation.
    func allocate(_ shape: Shape) throws -> DeviceArray {
        let bytes = max(shape.count, 1) * 4
        guard bytes <= info.maxAllocationBytes else {
            throw XAIError.outOfMemory(op: "allocate \(shape)", bytes: bytes, device: deviceLabel)
        }
        guard guardFloats > 0 else {
            let mem = try pool.take(bytes) ?? createBuffer(bytes)
            return DeviceArray(shape: shape, storage: OpenCLStorage(mem: mem, bytes: bytes, pool: pool))
        }
        let guarded = bytes + guardFloats * 4
        let mem = try pool.take(guarded) ?? createBuffer(guarded)
        let canary = guards.nextCanary()
        try check(guards.fill(mem, from: bytes, to: guarded, canary: canary), "clEnqueueFillBuffer", deviceLabel)
        return DeviceArray(shape: shape, storage: OpenCLStorage(mem: mem, bytes: guarded, pool: pool, guardOffset: bytes, canary: canary, guards: guards))
    }

    /// Whether every launch records a profiling event (``takeKernelProfile()``).
    public let profilesKernels: Bool
    /// The launches recorded since the last ``takeKernelProfile()``.
    let profile = RecordedLaunches()

    public func takeKernelProfile() throws -> [KernelTime] {
        try check(clFinish(queue), "clFinish", deviceLabel)
        var totals: [String: (launches: Int, nanoseconds: UInt64)] = [:]
        for (name, event) in profile.take() {
            defer { clReleaseEvent(event) }
            var start: cl_ulong = 0, end: cl_ulong = 0
            try check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil), "clGetEventProfilingInfo", deviceLabel)
            try check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil), "clGetEventProfilingInfo", deviceLabel)
            totals[name, default: (0, 0)].launches += 1
            totals[name, default: (0, 0)].nanoseconds += end >= start ? end - start : 0
        }
        return totals.map { KernelTime(name: $0.key, launches: $0.value.launches, seconds: Double($0.value.nanoseconds) / 1e9) }
            .sorted { ($0.seconds, $1.name) > ($1.seconds, $0.name) }
    }

    /// What crossed to and from the device (``TransferCounters``).
    let counters = Counted()
    public var transfers: TransferCounters { counters.read() }

    /// Adds to the transfer counters.
    func count(_ change: (inout TransferCounters) -> Void) { counters.update(change) }

    /// Floats of canary after every buffer allocated from now on (a testing aid; see ``BufferGuards``).
    var guardFloats = 0
    /// The canaries' ledger: `guards.takeViolations()` lists the buffers written past their end.
    let guards: BufferGuards

    /// A temporary buffer holding small host data (mask descriptions); released once the queue is done with it.
    func temporary<T>(_ values: [T]) throws -> cl_mem {
        try values.withUnsafeBytes {
            count { [n = $0.count] in $0.bytesToDevice += n }
            return try createBuffer(max($0.count, 4), host: $0.count > 0 ? $0.baseAddress : nil) }
    }

    public func upload(_ tensor: Tensor) throws -> DeviceArray {
        let a = try allocate(tensor.shape)
        let m = try mem(a, "upload")
        try tensor.scalars.withUnsafeBytes { buf in
            guard let base = buf.baseAddress, buf.count > 0 else { return }
            count { $0.bytesToDevice += buf.count; $0.hostWaits += 1 }
            // Only read: the write copies from it.
            try transfer(m, bytes: buf.count, host: UnsafeMutableRawPointer(mutating: base), toDevice: true)
        }
        return a
    }

    public func download(_ a: DeviceArray) throws -> Tensor {
        let m = try mem(a, "download")
        var out = [Float](repeating: 0, count: a.shape.count)
        try out.withUnsafeMutableBytes { buf in
            guard let base = buf.baseAddress, buf.count > 0 else { return }
            count { $0.bytesFromDevice += buf.count; $0.hostWaits += 1 }
            try transfer(m, bytes: buf.count, host: base, toDevice: false)
        }
        return try Tensor(shape: a.shape, scalars: out)
    }

    /// Transfers of at least this many bytes go through the pinned staging buffer.
    static let stagedTransferBytes = 64 << 10
    /// The pinned staging buffer's largest size; a longer transfer goes through it in pieces.
    var stagingCapacity = 64 << 20
    let staging = Staging()

    /// Moves `bytes` between `mem` and the host memory at `caller`. Large transfers go through one
    /// pinned buffer (`CL_MEM_ALLOC_HOST_PTR`, mapped once and left mapped), in pieces of its size:
    /// a driver copies pinned memory by DMA at the bus's speed, where pageable memory is first
    /// staged by the driver itself (NVIDIA's OpenCL moved about 1.2 GB/s that way on the H200).
    func transfer(_ mem: cl_mem, bytes: Int, host caller: UnsafeMutableRawPointer, toDevice: Bool) throws {
        func move(_ host: UnsafeMutableRawPointer, _ offset: Int, _ n: Int) throws {
            if toDevice {
                try check(clEnqueueWriteBuffer(queue, mem, cl_bool(CL_TRUE), offset, n, host, 0, nil, nil), "clEnqueueWriteBuffer", deviceLabel)
            } else {
                try check(clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), offset, n, host, 0, nil, nil), "clEnqueueReadBuffer", deviceLabel)
            }
        }
        try staging.withBuffer(bytes < Self.stagedTransferBytes ? 0 : min(bytes, stagingCapacity), backend: self) { pinned in
            // Small transfers, and a device that gave no pinned buffer, use the caller's memory.
            guard let (pinnedHost, size) = pinned else { return try move(caller, 0, bytes) }
            var offset = 0
            while offset < bytes {
                let n = min(size, bytes - offset)
                if toDevice { pinnedHost.copyMemory(from: caller + offset, byteCount: n) }
                try move(pinnedHost, offset, n)
                if !toDevice { (caller + offset).copyMemory(from: pinnedHost, byteCount: n) }
                offset += n
            }
        }
    }

    /// Waits for every queued command.
    public func synchronize() throws {
        count { $0.hostWaits += 1 }
        try check(clFinish(queue), "clFinish", deviceLabel)
    }

    // MARK: Programs and kernels

    /// The source of a kernel family, read once per backend (embedded, or from `XAI_KERNEL_DIR`).
    private func source(_ family: String) throws -> (text: String, origin: String) {
        if let s = sources[family] { return s }
        guard let s = KernelLibrary.source(family) else {
            let dir = ProcessInfo.processInfo.environment["XAI_KERNEL_DIR"]
            throw XAIError.file(path: dir.map { "\($0)/\(family).cl" } ?? "Kernels/\(family).cl",
                                reason: "kernel source not found or unreadable (XAI_KERNEL_DIR=\(dir ?? "unset"))")
        }
        sources[family] = s
        return s
    }

    /// Builds (or finds) the program of one family. Programs are keyed by source hash and build
    /// options within this backend's context (and so its device).
    /// `tiles`: the tile a launch was sized for, where not the backend's own tiled configuration
    /// (and the tensor-core tiling, the ladder's first where none is given).
    private func program(_ family: String, tiles: LaunchTiles?) throws -> cl_program {
        let (text, origin) = try source(family)
        var tunables = tunables, tiling = MMATiling.ladder[0]
        switch tiles {
        case .tiled(let config)?: tunables.gemm = config
        case .mma(let t)?: tiling = t
        case nil: break
        }
        let buildOptions = tunables.buildOptions + (KernelLibrary.needsCorrectlyRoundedDivideSqrt(family) ? " -cl-fp32-correctly-rounded-divide-sqrt" : "")
            + (family == "mma" ? tensorCores?.buildOptions(tiling) ?? "" : "")
            + (reportsBuilds && info.vendor.uppercased().contains("NVIDIA") ? " -cl-nv-verbose" : "")
        let key = "\(family)|\(text)|\(buildOptions)"
        if let p = programs[key] { return p }
        // XAI_KERNEL_BUILD_LOG wants the compiler's own report, so it compiles from source, and stores
        // nothing: its options (NVIDIA's -cl-nv-verbose) make entries no other run reads.
        let entry = reportsBuilds ? nil : programCache.map {
            (cache: $0, identity: ProgramBinaryCache.identity(info, family: family, source: text, options: buildOptions))
        }
        var refused: [UInt8]?, refusesItsOwn = false
        switch entry.flatMap({ $0.cache.load(family: family, identity: $0.identity) }) {
        case .binary(let binary)?:
            switch programFromBinary(binary, options: buildOptions) {
            case .built(let program):
                programs[key] = program
                programsFromCache += 1
                return program
            case .refused:
                // Compiled from source below, and the entry replaced by the driver's new binary, or
                // by a note where that binary is the one it refused.
                refused = binary
            case .failed:
                // Out of resources or memory, say: compiled from source, and the entry stored again.
                break
            }
        case .refused?:
            refusesItsOwn = true
        case nil:
            break
        }
        var err: cl_int = 0
        let program: cl_program? = text.withCString { ptr in
            var p: UnsafePointer<CChar>? = ptr
            var length = strlen(ptr)
            return clCreateProgramWithSource(context, 1, &p, &length, &err)
        }
        guard err == CL_SUCCESS, let program else {
            throw XAIError.openCL(call: "clCreateProgramWithSource(\(family))", status: err, name: openCLStatusName(err), device: deviceLabel)
        }
        var dev: cl_device_id? = info.device
        let status = clBuildProgram(program, 1, &dev, buildOptions, nil, nil)
        if status != CL_SUCCESS {
            let log = buildLog(program)
            clReleaseProgram(program)
            if [CL_BUILD_PROGRAM_FAILURE, CL_COMPILE_PROGRAM_FAILURE, CL_LINK_PROGRAM_FAILURE, CL_INVALID_BUILD_OPTIONS,
                CL_INVALID_COMPILER_OPTIONS].contains(status) {
                throw XAIError.kernelBuild(file: origin, device: deviceLabel, options: buildOptions, log: log)
            }
            throw XAIError.openCL(call: "clBuildProgram(\(family))", status: status, name: openCLStatusName(status), device: deviceLabel)
        }
        if reportsBuilds {
            let log = buildLog(program).trimmingCharacters(in: .whitespacesAndNewlines)
            report("[kernel build] \(family) on \(info.name) (\(buildOptions)): " + (log.isEmpty ? "no build log" : "\n" + log))
        }
        programs[key] = program
        programsCompiled += 1
        if let entry, !refusesItsOwn, let binary = programBinary(program) {
            if binary == refused {
                // The driver refused the very binary it has made again: it would every run.
                entry.cache.markRefused(family: family, identity: entry.identity)
                programsRefused += 1
            } else {
                entry.cache.store(binary, family: family, identity: entry.identity)
            }
        }
        return program
    }

    /// What became of a program built from a stored binary.
    private enum BinaryBuild {
        case built(cl_program)
        /// The driver rejects the binary itself (`CL_INVALID_BINARY`, or its build fails).
        case refused
        /// Anything else (out of resources or memory): says nothing of the binary.
        case failed

        init(failure status: cl_int) {
            self = [CL_INVALID_BINARY, CL_BUILD_PROGRAM_FAILURE].contains(status) ? .refused : .failed
        }
    }

    /// A program built from a binary this driver made (``ProgramBinaryCache``); where it is
    /// refused or fails, the caller compiles the source instead.
    private func programFromBinary(_ binary: [UInt8], options: String) -> BinaryBuild {
        if let status = binaryBuildStatus { return BinaryBuild(failure: status) }
        var dev: cl_device_id? = info.device
        var length = binary.count
        var binaryStatus: cl_int = 0, err: cl_int = 0
        let program: cl_program? = binary.withUnsafeBufferPointer { buffer in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            return clCreateProgramWithBinary(context, 1, &dev, &length, &pointer, &binaryStatus, &err)
        }
        guard let program, err == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            if let program { clReleaseProgram(program) }
            // The per-device status says what was wrong with the binary; `err` may only say "invalid".
            return BinaryBuild(failure: binaryStatus != CL_SUCCESS ? binaryStatus : err)
        }
        let status = clBuildProgram(program, 1, &dev, options, nil, nil)
        guard status == CL_SUCCESS else {
            clReleaseProgram(program)
            return BinaryBuild(failure: status)
        }
        return .built(program)
    }

    /// The driver's binary of a built program (one device), or `nil` where it gives none.
    private func programBinary(_ program: cl_program) -> [UInt8]? {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
              size > 0 else { return nil }
        var binary = [UInt8](repeating: 0, count: size)
        let status = binary.withUnsafeMutableBufferPointer { buffer -> cl_int in
            var pointer: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil)
        }
        return status == CL_SUCCESS ? binary : nil
    }

    private func buildLog(_ program: cl_program) -> String {
        var size = 0
        clGetProgramBuildInfo(program, info.device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
        var log = [CChar](repeating: 0, count: max(size, 1))
        clGetProgramBuildInfo(program, info.device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
        return cString(log)
    }

    /// A cached kernel and the largest work-group it can run with on this device.
    private func kernel(_ family: String, _ name: String, tiles: LaunchTiles?) throws -> (kernel: cl_kernel, maxGroup: Int) {
        let key = "\(family).\(name)" + (tiles.map { " (\($0))" } ?? "")
        if let k = kernels[key] { return k }
        var err: cl_int = 0
        guard let k = clCreateKernel(try program(family, tiles: tiles), name, &err), err == CL_SUCCESS else {
            throw XAIError.openCL(call: "clCreateKernel(\(name))", status: err, name: openCLStatusName(err), device: deviceLabel)
        }
        var maxGroup = 0
        if clGetKernelWorkGroupInfo(k, info.device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE), MemoryLayout<Int>.size, &maxGroup, nil) != CL_SUCCESS {
            maxGroup = 1
        }
        if reportsBuilds {
            var privateBytes: cl_ulong = 0
            let known = clGetKernelWorkGroupInfo(k, info.device, cl_kernel_work_group_info(CL_KERNEL_PRIVATE_MEM_SIZE),
                                                 MemoryLayout<cl_ulong>.size, &privateBytes, nil) == CL_SUCCESS
            report("[kernel build] \(key): private memory \(known ? "\(privateBytes) bytes" : "unknown") per work-item, work-groups up to \(maxGroup)")
        }
        kernels[key] = (k, max(maxGroup, 1))
        return (k, max(maxGroup, 1))
    }

    /// Work-items per group along axis 0 when a launch does not fix its own: one group of this
    /// size gives GPUs full warps/wavefronts and keeps odd (even prime) sizes from falling back to
    /// groups of one. The kernels bounds-check, so the global size is rounded up to it. (Tests set
    /// a small odd size, so that every launch has work-items past its end and every bounds check
    /// is exercised.)
    var defaultGroupSize = 256

    /// Sets the arguments and enqueues `family.name` over `global` work-items. With `local`, the
    /// global size is rounded up to whole groups of that shape; without, axis 0 gets groups of
    /// ``defaultGroupSize`` (capped by what the kernel allows).
    /// `tiles`: the tile a GEMM-family launch was sized for (its program is built with it).
    func launch(_ family: String, _ name: String, global: [Int], local: [Int]? = nil, tiles: LaunchTiles? = nil, _ args: [KernelArg]) throws {
        guard global.allSatisfy({ $0 > 0 }) else { return }
        guard global.allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw XAIError.unsupported(op: name, reason: "\(global) work-items exceed the 32-bit indexing of the kernels")
        }
        lock.lock(); defer { lock.unlock() }
        let (k, maxGroup) = try kernel(family, name, tiles: tiles)
        for (i, arg) in args.enumerated() {
            let status: cl_int
            switch arg {
            case .buffer(var m): status = clSetKernelArg(k, cl_uint(i), MemoryLayout<cl_mem>.size, &m)
            case .int(let v): var x = Int32(clamping: v); status = clSetKernelArg(k, cl_uint(i), 4, &x)
            case .float(var v): status = clSetKernelArg(k, cl_uint(i), 4, &v)
            case .intVector8(let vs):
                var x = (0..<8).map { $0 < vs.count ? Int32(clamping: vs[$0]) : 0 }
                status = clSetKernelArg(k, cl_uint(i), 32, &x)
            case .intVector4(let vs):
                var x = (0..<4).map { $0 < vs.count ? Int32(clamping: vs[$0]) : 0 }
                status = clSetKernelArg(k, cl_uint(i), 16, &x)
            }
            try check(status, "clSetKernelArg(\(name), \(i))", deviceLabel)
        }
        var l = local ?? ([min(defaultGroupSize, maxGroup, global[0])] + Array(repeating: 1, count: global.count - 1))
        var g = global
        for d in 0..<g.count { g[d] = (g[d] + l[d] - 1) / l[d] * l[d] }
        var event: cl_event?
        let status = profilesKernels ? clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, &g, &l, 0, nil, &event)
            : clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, &g, &l, 0, nil, nil)
        if let event { profile.add(name, event) }
        count { $0.kernelLaunches += 1 }
        if status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_RESOURCES {
            throw XAIError.outOfMemory(op: name, bytes: 0, device: deviceLabel)
        }
        try check(status, "clEnqueueNDRangeKernel(\(name))", deviceLabel)
    }
}
