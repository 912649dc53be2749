import CBLAS
import CDNNL
import CLoops
import Dispatch
import Foundation
import XAICore

/// Float32 host memory owned by the ``CPUBackend``, 64-byte aligned for vector loads; returned to
/// the backend's pool when released. A storage is written once, by the op that makes it, and only
/// read afterwards, so the copies made of it in another layout are kept with it.
final class CPUStorage: DeviceStorage, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    /// Floats allocated (a blocked layout's zero-padded channel tail included).
    let count: Int
    let pool: BufferPool
    let layout: CPULayout
    /// The `[N, C, H, W]` a channel-blocked storage holds (plain storage is viewed with any shape).
    let blockedShape: Shape?
    private var copies: [CopyKey: CPUStorage] = [:]
    /// For weights reordered for oneDNN: the format they are in.
    var weightsDesc: dnnl_memory_desc_t?
    private let lock = NSLock()

    enum CopyKey: Hashable {
        /// The elements viewed as `shape`, in `layout`.
        case layout(CPULayout, Shape)
        /// Weights in a format a oneDNN convolution of this geometry chose. Most formats do not
        /// depend on the batch size, but Winograd's do (its blocking is picked per minibatch), so a
        /// geometry may hold a few: `variant` counts them.
        case weights(OneDNN.Geometry, ConvolutionAlgorithm, variant: Int)
        /// Weights `[Cout, Cin, kh, kw]` as `[Cin, Cout, kh, kw]`, each kernel rotated by 180 degrees:
        /// the forward convolution by them computes a stride-1 layer's input gradient.
        case flippedTransposed
        /// A stem's weights as the 1x1 convolution `[Cin * kh * kw, Cout, 1, 1]` of its im2col columns' gradient.
        case stemColumns
        /// Depthwise weights in the format of a oneDNN depthwise post-op fused after a 1x1 convolution.
        case fusedDepthwise(OneDNN.Geometry)
    }

    init(count: Int, pool: BufferPool, layout: CPULayout = .plain, blockedShape: Shape? = nil) {
        self.count = count
        self.pool = pool
        self.layout = layout
        self.blockedShape = blockedShape
        pointer = pool.take(count)
    }

    /// This storage's elements in another layout, made by `make` the first time it is asked for.
    func copy(_ key: CopyKey, make: () throws -> CPUStorage) rethrows -> CPUStorage {
        lock.lock(); defer { lock.unlock() }
        if let c = copies[key] { return c }
        let c = try make()
        copies[key] = c
        return c
    }

    deinit { pool.give(pointer, count) }
}

/// Keeps released buffers by exact size, so that repeated passes of the same network reuse memory
/// instead of paying for fresh pages on every call (fresh pages cost page faults and zeroing).
/// When the buffers held reach the capacity, the ones returned longest ago are released first.
final class BufferPool: @unchecked Sendable {
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    /// Every held buffer, oldest return first: the order of eviction.
    private var age: [(count: Int, pointer: UnsafeMutablePointer<Float>)] = []
    private var cachedBytes = 0
    private let capacityBytes: Int
    private let lock = NSLock()

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    /// Bytes of the buffers held for reuse.
    var cachedByteCount: Int { lock.lock(); defer { lock.unlock() }; return cachedBytes }

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        if let p = free[count]?.popLast() {
            cachedBytes -= count * 4
            if let i = age.lastIndex(where: { $0.pointer == p }) { age.remove(at: i) }
            lock.unlock()
            return p
        }
        lock.unlock()
        return Self.allocate(count)
    }

    /// Large buffers get 2 MiB alignment and transparent huge pages: convolutions stride through
    /// activation planes, and with 4 KiB pages a batch's working set thrashes the TLB.
    static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * 4
        let huge = bytes >= 4 << 20
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, huge ? 2 << 20 : 64, bytes) == 0, let raw else {
            // Out of memory: let the Swift allocator report it the usual way.
            return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: max(count, 1))
        }
        #if os(Linux)
        if huge { _ = madvise(raw, bytes, MADV_HUGEPAGE) }
        #endif
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        let bytes = count * 4
        guard bytes <= capacityBytes else { Foundation.free(p); return }
        var evicted: [UnsafeMutablePointer<Float>] = []
        lock.lock()
        // Make room by releasing the buffers returned longest ago. A method that follows another
        // needs other sizes (occlusion's batches of 64 after IG's of 8): a pool that kept the old
        // sizes and refused the new ones would allocate every batch afresh, page faults and all
        // (measured: occlusion after IG 36.2 s instead of 28.9 s on ResNet-50).
        while cachedBytes + bytes > capacityBytes, !age.isEmpty {
            let old = age.removeFirst()
            if let i = free[old.count]?.firstIndex(of: old.pointer) { free[old.count]?.remove(at: i) }
            cachedBytes -= old.count * 4
            evicted.append(old.pointer)
        }
        free[count, default: []].append(p)
        age.append((count, p))
        cachedBytes += bytes
        lock.unlock()
        for e in evicted { Foundation.free(e) }
    }

    deinit {
        for list in free.values { for p in list { Foundation.free(p) } }
    }
}

/// The CPU backend: convolution as im2col (or direct 1x1) plus OpenBLAS `sgemm`, everything else
/// as plain loops spread over cores with Dispatch. The im2col workspace is chunked by output rows
/// so that it stays within ``workspaceBudget`` at any image size and batch size.
///
/// Files: this one holds memory, parallel loops, GEMM, elementwise ops, reductions and softmax;
/// `+Conv` convolution, `+Pool` pooling, `+Resize` resampling, `+Masks` perturbation masks and
/// `+Movement` data movement.
public final class CPUBackend: Backend {
    public let device = Device.cpu
    public let name: String
    public let memoryBudget: Int
    /// Every primitive runs here (on oneDNN, OpenBLAS or the C loops).
    public func supports(_ primitive: Primitive) -> Bool { true }
    public var details: BackendDetails {
        let rule: String
        switch (offersWinograd, convolutionPolicy) {
        case (false, _), (true, .direct): rule = "direct convolutions"
        case (true, .auto):
            rule = "direct convolutions in gradient passes, Winograd for 3x3 stride-1 layers in forward-only passes"
                + (tuning.map { " except where the tuning table (\($0.key), measured \($0.measured)) found direct faster" } ?? "")
        case (true, .winograd): rule = "Winograd for every 3x3 stride-1 layer"
        }
        return BackendDetails(mayUseFastConvolutions: mayUseWinograd, facts: [("convolutions", HostInfo.current().oneDNN ?? "im2col + OpenBLAS")],
                              algorithms: rule + (dnnl == nil ? " (im2col + OpenBLAS sgemm)" : " (oneDNN)"))
    }
    /// Bytes one im2col workspace may take.
    public let workspaceBudget: Int
    /// Bytes of im2col columns plus output that one convolution work item aims to keep in cache.
    let cacheBudget = Int(ProcessInfo.processInfo.environment["XAI_CONV_CACHE_BYTES"] ?? "") ?? (2 << 20)
    let cores: Int
    let pool: BufferPool
    /// oneDNN for convolutions, or `nil` where its engine cannot be opened (or `XAI_CPU_CONV=im2col`).
    let dnnl: OneDNN?
    /// How 3x3 stride-1 convolutions are computed when oneDNN offers Winograd.
    let convolutionPolicy: ConvolutionPolicy
    /// How the input gradient of a stride-1 layer that Winograd could compute forward is found.
    let backwardRoute: BackwardRoute
    /// This machine's measurements of direct against Winograd (`xai-bench tune --device cpu`),
    /// consulted under the `auto` policy only.
    let tuning: ConvolutionTuningTable?
    /// The forward-only convolutions Winograd could compute, by geometry, while the tuner records.
    let planRecorder = PlanRecorder()

    /// The input gradient of a stride-1 layer is a forward convolution of the output gradient by
    /// the flipped, transposed weights: on oneDNN's forward kernels, faster than its backward-data
    /// ones on ResNet-50's 3x3 layers (direct: about 5 %; Winograd F(2x2, 3x3), under that policy: more).
    enum BackwardRoute: Sendable {
        /// The forward convolution by flipped weights where it applies, else backward data.
        case flippedForward
        /// Always oneDNN's backward-data primitive (for tests).
        case backwardData
    }

    /// Which code computes convolutions.
    public enum Convolutions: Sendable {
        /// oneDNN's kernels, activations kept in its channel-blocked layout between layers.
        case oneDNN
        /// im2col (or direct 1x1) plus OpenBLAS sgemm, on plain NCHW arrays.
        case im2col
    }

    /// oneDNN's version and the instruction set its kernels use, or `nil` when convolutions run on
    /// the im2col path.
    public var oneDNNDescription: String? { dnnl.map { "oneDNN \($0.version) (\($0.isa))" } }

    /// oneDNN primitives created by this process so far (repeated passes of the same shapes create none).
    public static var oneDNNPrimitivesCreated: Int { OneDNN.shared?.primitivesCreated ?? 0 }
    /// Fused 1x1 + depthwise convolutions run so far in this process.
    public static var oneDNNFusedDepthwiseRuns: Int { OneDNN.shared?.fusedDepthwiseRuns ?? 0 }
    /// Weight tensors reordered into a oneDNN format by this process so far.
    public static var oneDNNWeightReorders: Int { OneDNN.shared?.weightReorders ?? 0 }

    /// Whether oneDNN's Winograd kernels exist on this machine (AVX-512, 16-channel blocks).
    public var offersWinograd: Bool { dnnl?.blockSize == 16 }
    /// Whether some 3x3 stride-1 layers may run on Winograd (offered, and not forced to direct):
    /// then fewer multiplications than a direct convolution's are done.
    public var mayUseWinograd: Bool { offersWinograd && convolutionPolicy != .direct }

    /// How many layer geometries chose each algorithm so far, process-wide.
    public static var convolutionAlgorithmsChosen: [ConvolutionAlgorithm: Int] { OneDNN.shared?.chosenAlgorithms ?? [:] }
    /// The oneDNN implementations of the convolution primitives made so far, with their counts
    /// (reference kernels are refused: those layers take the im2col path).
    public static var oneDNNImplementations: [String: Int] { OneDNN.shared?.implementations ?? [:] }
    /// The largest single array this backend allocates: half the physical memory. Anything larger
    /// (a hostile shape, a batch far beyond the budget) is refused with an error instead of being
    /// killed by the kernel's out-of-memory handler.
    let largestAllocation: Int

    /// - Parameters:
    ///   - memoryBudget: bytes methods may use for batches (default: a quarter of physical memory, at most 8 GiB).
    ///   - workspaceBudget: bytes for one convolution's im2col workspace (default 64 MiB; at least one output row is always processed).
    ///   - convolutions: oneDNN (the default, where it opens) or the im2col + OpenBLAS path (the
    ///     fallback for configurations oneDNN refuses, kept for comparison and tests); the
    ///     environment's `XAI_CPU_CONV=im2col` chooses the latter too.
    ///   - convolutionPolicy: direct or Winograd for 3x3 stride-1 layers on oneDNN (default: the
    ///     `XAI_CONV_ALGO` environment variable, else `direct`).
    public convenience init(memoryBudget: Int? = nil, workspaceBudget: Int = 64 << 20, convolutions: Convolutions = .oneDNN,
                convolutionPolicy: ConvolutionPolicy? = nil) {
        self.init(memoryBudget: memoryBudget, workspaceBudget: workspaceBudget, convolutions: convolutions,
                  convolutionPolicy: convolutionPolicy, backwardRoute: .flippedForward)
    }

    /// The threads our loops use: every core, or fewer where the process was given fewer. A scheduler
    /// that gives a process n cores says so in `OMP_NUM_THREADS` (Ray sets it to an actor's
    /// `num_cpus`; oneDNN's OpenMP already follows it), so both pools stay within one budget;
    /// `XAI_THREADS` overrides it. Values that are not a positive integer are ignored.
    static func threadBudget(available: Int, environment: [String: String]) -> Int {
        let asked = [environment["XAI_THREADS"], environment["OMP_NUM_THREADS"]].lazy
            .compactMap { $0.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }.first { $0 >= 1 }
        return max(1, min(available, asked ?? available))
    }

    init(memoryBudget: Int? = nil, workspaceBudget: Int = 64 << 20, convolutions: Convolutions = .oneDNN,
         convolutionPolicy: ConvolutionPolicy? = nil, backwardRoute: BackwardRoute) {
        self.backwardRoute = backwardRoute
        cores = Self.threadBudget(available: ProcessInfo.processInfo.activeProcessorCount, environment: ProcessInfo.processInfo.environment)
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        self.memoryBudget = memoryBudget ?? min(physical / 4, 8 << 30)
        self.workspaceBudget = max(workspaceBudget, 0)
        pool = BufferPool(capacityBytes: self.memoryBudget / 2)
        largestAllocation = max(physical / 2, 1 << 26)
        // All parallelism is ours (Dispatch): OpenBLAS runs single-threaded inside each work item.
        // Its own threads busy-wait between calls and would steal the cores our loops need.
        openblas_set_num_threads(1)
        let environment = ProcessInfo.processInfo.environment
        let engine = convolutions == .im2col || environment["XAI_CPU_CONV"] == "im2col" ? nil : OneDNN.shared
        dnnl = engine
        // Exact by default: Winograd even in forward-only passes moved ResNet-50's occlusion map by
        // 3.0e-3 relative L2 (VGG16's by 6.7e-4), for 14 % less time.
        self.convolutionPolicy = convolutionPolicy ?? ConvolutionPolicy(environment["XAI_CONV_ALGO"] ?? "direct") ?? .direct
        tuning = self.convolutionPolicy == .auto ? engine.flatMap { dnnl in
            ConvolutionTuningTable.load(key: ConvolutionTuningTable.key(dnnl), environment: environment, warn: CPUBackend.warnOnce)
        } : nil
        let cores = self.cores
        name = engine.map { "cpu (oneDNN \($0.version) \($0.isa), OpenBLAS, \(cores) cores)" } ?? "cpu (OpenBLAS, \(cores) cores)"
    }

    // MARK: Memory

    func storage(_ a: DeviceArray, _ op: String) throws -> CPUStorage {
        guard let s = a.storage as? CPUStorage else {
            throw XAIError.wrongDevice(op: op, expected: name, got: String(describing: type(of: a.storage)))
        }
        return s
    }

    /// The row-major elements of `a` (a channel-blocked array is reordered once; the copy stays
    /// with it).
    func ptr(_ a: DeviceArray, _ op: String) throws -> UnsafeMutablePointer<Float> {
        let s = try storage(a, op)
        guard case .channelBlocked = s.layout, let shape = s.blockedShape, let dnnl else { return s.pointer }
        return try s.copy(.layout(.plain, shape)) { try reordered(s, shape: shape, to: .plain, dnnl) }.pointer
    }

    /// A new array of `shape`, refused (before allocating) when it alone would exceed
    /// ``largestAllocation``.
    func allocate(_ shape: Shape) throws -> (DeviceArray, UnsafeMutablePointer<Float>) {
        let s = try allocateStorage(shape, layout: .plain)
        return (DeviceArray(shape: shape, storage: s), s.pointer)
    }

    /// Storage for `shape` in `layout` (channel-blocked: `[N, ceil(C / b) * b, H, W]` floats).
    func allocateStorage(_ shape: Shape, layout: CPULayout) throws -> CPUStorage {
        var count = shape.count
        if let b = layout.blockSize { count = shape[0] * ((shape[1] + b - 1) / b * b) * shape[2] * shape[3] }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: 4)
        guard !overflow, bytes <= largestAllocation else {
            throw XAIError.outOfMemory(op: "allocate \(shape)", bytes: overflow ? Int.max : bytes, device: name)
        }
        return CPUStorage(count: count, pool: pool, layout: layout, blockedShape: layout == .plain ? nil : shape)
    }

    /// `s` (holding `shape`) reordered into `layout` by oneDNN.
    func reordered(_ s: CPUStorage, shape: Shape, to layout: CPULayout, _ dnnl: OneDNN) throws -> CPUStorage {
        let out = try allocateStorage(shape, layout: layout)
        try dnnl.reorder(shape, from: s.layout, s.pointer, to: layout, out.pointer)
        return out
    }

    /// `a` (4-D) in the channel-blocked layout: itself when it is already, else a copy kept with it.
    func blocked(_ a: DeviceArray, _ op: String, _ dnnl: OneDNN) throws -> CPUStorage {
        let s = try storage(a, op)
        let layout = CPULayout.channelBlocked(dnnl.blockSize)
        if s.layout == layout, s.blockedShape == a.shape { return s }
        if s.layout != .plain, let shape = s.blockedShape, shape != a.shape {
            // A blocked array viewed with another shape: through its plain copy.
            let plain = try s.copy(.layout(.plain, shape)) { try reordered(s, shape: shape, to: .plain, dnnl) }
            return try plain.copy(.layout(layout, a.shape)) { try reordered(plain, shape: a.shape, to: layout, dnnl) }
        }
        return try s.copy(.layout(layout, a.shape)) { try reordered(s, shape: a.shape, to: layout, dnnl) }
    }

    public func upload(_ tensor: Tensor) throws -> DeviceArray {
        let (a, p) = try allocate(tensor.shape)
        tensor.scalars.withUnsafeBufferPointer { if let base = $0.baseAddress { p.update(from: base, count: $0.count) } }
        return a
    }

    public func download(_ a: DeviceArray) throws -> Tensor {
        let p = try ptr(a, "download")
        return try Tensor(shape: a.shape, scalars: Array(UnsafeBufferPointer(start: p, count: a.shape.count)))
    }

    public func filled(_ shape: Shape, value: Float) throws -> DeviceArray {
        let (a, p) = try allocate(shape)
        p.update(repeating: value, count: shape.count)
        return a
    }

    // MARK: Parallel loops

    /// Runs `body` over `0..<count` split into contiguous chunks, one or more per core, when the work
    /// (`count * costPerItem` elementary steps) is large enough to pay for the fan-out; a cost of 0
    /// means "already inside a parallel loop: run serially".
    func parallelFor(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(count, count * costPerItem < 32_768 ? 1 : cores * 4)
        if chunks <= 1 { body(0..<count); return }
        // The chunks write disjoint ranges.
        Self.teamForEach(chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Whether parallel loops run on an OpenMP team (oneDNN's) rather than on Dispatch.
    public static var loopsRunOnOpenMPTeam: Bool { xai_team_available() != 0 }

    /// `body(0) ... body(iterations - 1)` in parallel, on oneDNN's OpenMP team where the process
    /// has one (else on Dispatch's workers), returning when all have finished. One team for every
    /// parallel loop: oneDNN's threads busy-wait for the next primitive after each one, and loops
    /// run by a second pool between primitives competed with them for the cores (SqueezeNet's
    /// pooling and concatenations on 2 cores). Iterations must touch disjoint memory.
    static func teamForEach(_ iterations: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escaping in
            var closure = escaping
            let ran = withUnsafeMutablePointer(to: &closure) { context in
                xai_team_for(iterations, { context, chunk in
                    context?.assumingMemoryBound(to: ((Int) -> Void).self).pointee(chunk)
                }, context)
            }
            if ran == 0 { concurrentForEach(iterations, escaping) }
        }
    }

    /// Row-major `C = alpha * op(A) * op(B) + beta * C`. Large products are split into one block
    /// of rows (or of columns, whichever is longer) per core, each a single-threaded OpenBLAS call;
    /// with `parallel` the blocks run concurrently, without it in turn. The split depends only on
    /// the product's shape, so an image's result is the same bits whether it ran alone (parallel
    /// inside) or beside others in a batch (one image per core).
    func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
               _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
               _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, parallel: Bool) {
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        let work = Double(m) * Double(n) * Double(k)
        let blocks: Int = work >= 262_144 ? min(cores, max(m, n) / 8) : 1
        if blocks <= 1 {
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        let byRows = m >= n
        let extent = byRows ? m : n
        let (pa, pb, pc) = (UncheckedSendable(a), UncheckedSendable(b), UncheckedSendable(c))
        let block: @Sendable (Int) -> Void = { i in
            // Blocks of whole multiples of 16 keep the micro-kernel's panels full.
            let lo = (extent * i / blocks) & ~15, hi = i == blocks - 1 ? extent : (extent * (i + 1) / blocks) & ~15
            guard hi > lo else { return }
            if byRows {
                let aBlock = transA ? pa.value + lo : pa.value + lo * lda
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(hi - lo), Int32(n), Int32(k), alpha, aBlock, Int32(lda), pb.value, Int32(ldb),
                            beta, pc.value + lo * ldc, Int32(ldc))
            } else {
                let bBlock = transB ? pb.value + lo * ldb : pb.value + lo
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(hi - lo), Int32(k), alpha, pa.value, Int32(lda), bBlock, Int32(ldb),
                            beta, pc.value + lo, Int32(ldc))
            }
        }
        // On the OpenMP team, as every other parallel loop: a second pool would compete with its
        // busy-waiting threads for the cores (a transformer alternates GEMMs and row-wise loops).
        if parallel { Self.teamForEach(blocks) { block($0) } } else { for i in 0..<blocks { block(i) } }
    }

    /// Rows of a GEMM op's product taken without oneDNN, in blocks of exactly `rowBlock` rows
    /// (the last one padded with zero rows), one single-threaded OpenBLAS call each, the blocks
    /// spread over the cores. OpenBLAS picks its kernels and its split by the row count, so a row
    /// of an image alone and the same row in a batch would round differently; with every call the
    /// same shape, a row gets the same bits wherever it sits.
    static let rowBlock = 16

    func rowBlockGemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let rows = Self.rowBlock
        let blocks = (m + rows - 1) / rows
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        let (pa, pb, pc) = (UncheckedSendable(a), UncheckedSendable(b), UncheckedSendable(c))
        Self.teamForEach(blocks) { i in
            let lo = i * rows, count = min(rows, m - lo)
            if count == rows {
                let aBlock = transA ? pa.value + lo : pa.value + lo * lda
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(rows), Int32(n), Int32(k), alpha, aBlock, Int32(lda), pb.value, Int32(ldb),
                            beta, pc.value + lo * ldc, Int32(ldc))
                return
            }
            // The last, short block: its rows copied (untransposed) into a full block of zeros.
            var aPad = [Float](repeating: 0, count: rows * k), cPad = [Float](repeating: 0, count: rows * n)
            for r in 0..<count {
                for j in 0..<k { aPad[r * k + j] = transA ? pa.value[j * lda + lo + r] : pa.value[(lo + r) * lda + j] }
                if beta != 0 { for j in 0..<n { cPad[r * n + j] = pc.value[(lo + r) * ldc + j] } }
            }
            aPad.withUnsafeBufferPointer { ap in
                cPad.withUnsafeMutableBufferPointer { cp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, Int32(rows), Int32(n), Int32(k), alpha, ap.baseAddress, Int32(k),
                                pb.value, Int32(ldb), beta, cp.baseAddress, Int32(n))
                }
            }
            for r in 0..<count { for j in 0..<n { pc.value[(lo + r) * ldc + j] = cPad[r * n + j] } }
        }
    }

    func applyActivation(_ op: UnaryOp, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if op == .identity { return }
        if op == .relu {
            for i in 0..<count where p[i] < 0 { p[i] = 0 }
            return
        }
        for i in 0..<count { p[i] = op.apply(p[i]) }
    }

    // MARK: Linear algebra

    public func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let (m, n, k) = (plan.m, plan.n, plan.k)
        let pa = try ptr(a, "gemm"), pb = try ptr(b, "gemm")
        let (out, pc) = try allocate([m, n])
        if let matmul = oneDNNMatMul(BatchedGemmPlan(plan), bias: bias != nil, alpha: alpha, activation: activation), let dnnl {
            try dnnl.run(matmul, a: pa, b: pb, bias: try bias.map { try ptr($0, "gemm") }, c: pc)
            return out
        }
        var beta: Float = 0
        if let bias {
            let pbias = try ptr(bias, "gemm")
            for i in 0..<m { (pc + i * n).update(from: pbias, count: n) }
            beta = 1
        }
        if n * k < 1024 {
            // Too small for oneDNN: one call per row, so every row takes the same OpenBLAS path
            // whatever the batch (its kernels for a few rows round differently from its tiles).
            for i in 0..<m {
                sgemm(plan.transposeA, plan.transposeB, 1, n, k, alpha, plan.transposeA ? pa + i : pa + i * plan.lda, plan.lda, pb, plan.ldb,
                      beta, pc + i * n, n, parallel: false)
            }
        } else {
            rowBlockGemm(plan.transposeA, plan.transposeB, m, n, k, alpha, pa, plan.lda, pb, plan.ldb, beta, pc, n)
        }
        parallelFor(m, costPerItem: n) { rows in
            applyActivation(activation, pc + rows.lowerBound * n, rows.count * n)
        }
        return out
    }

    /// oneDNN's matmul for a product large enough to pay for a primitive call (bias, output scale
    /// and activation fused into it), or `nil` (OpenBLAS then runs it). oneDNN keeps `k` whole in
    /// each thread's accumulation, so every row's result is the same bits whatever `m`: an image
    /// computes alike alone or in a batch.
    func oneDNNMatMul(_ plan: BatchedGemmPlan, bias: Bool, alpha: Float, activation: UnaryOp) -> DNNLMatMul? {
        // oneDNN 2.x scales the sum with the bias, ours scales the product only.
        guard let dnnl, plan.m > 0, plan.n > 0, plan.k > 0, alpha == 1 || !bias else { return nil }
        // Chosen by the work per output row, never by the number of rows: a batch of images must
        // take the same path as one image, or its rows would round differently.
        let work = Double(plan.n) * Double(plan.k)
        guard work >= 1024 else { return nil }
        return dnnl.matmul(.init(plan: plan, hasBias: bias, alpha: alpha, activation: activation == .identity ? nil : activation))
    }

    public func batchedGemm(_ a: DeviceArray, _ b: DeviceArray, plan: BatchedGemmPlan) throws -> DeviceArray? {
        guard let matmul = oneDNNMatMul(plan, bias: false, alpha: 1, activation: .identity), let dnnl else { return nil }
        let pa = try ptr(a, "batchedGemm"), pb = try ptr(b, "batchedGemm")
        let (out, pc) = try allocate(plan.outputShape)
        try dnnl.run(matmul, a: pa, b: pb, bias: nil, c: pc)
        return out
    }

    // MARK: Elementwise

    /// Pointwise functions that go to oneDNN's vectorised primitive: GELU, whose erf or tanh the
    /// scalar loop calls once per element (a transformer's largest activations). Every size goes
    /// there: a threshold on the array's size would send one image and a batch down different
    /// approximations of erf, and their bits apart. The others keep the exact scalar loop.
    static func usesOneDNNPointwise(_ op: UnaryOp, count: Int) -> Bool {
        switch op {
        case .gelu, .geluTanh: return count >= 1
        default: return false
        }
    }

    public func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray {
        if let y = try blockedUnary(x, plan.op) { return y }
        let op = plan.op
        let px = try ptr(x, "unary(\(op))")
        let (out, po) = try allocate(x.shape)
        if Self.usesOneDNNPointwise(op, count: x.shape.count), let dnnl, try dnnl.eltwise(op, count: x.shape.count, source: px, destination: po) {
            return out
        }
        parallelFor(x.shape.count, costPerItem: 4) { r in
            for i in r { po[i] = op.apply(px[i]) }
        }
        return out
    }

    public func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray {
        if let y = try blockedUnaryBackward(gradOutput, value: value, plan) { return y }
        let (op, valueIsOutput) = (plan.op, plan.valueIsOutput)
        let pg = try ptr(gradOutput, "unaryBackward"), pv = try ptr(value, "unaryBackward")
        let (out, po) = try allocate(value.shape)
        if !valueIsOutput, Self.usesOneDNNPointwise(op, count: value.shape.count), let dnnl,
           try dnnl.eltwiseBackward(op, count: value.shape.count, gradOutput: pg, source: pv, gradInput: po) {
            return out
        }
        parallelFor(value.shape.count, costPerItem: 4) { r in
            if VectorLoops.unaryBackward(op, grad: pg, value: pv, out: po, r) { return }
            for i in r {
                let d = valueIsOutput ? op.derivative(output: Double(pv[i])) : op.derivative(input: Double(pv[i]))
                po[i] = pg[i] * Float(d)
            }
        }
        return out
    }

    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray {
        if let y = try blockedBinary(op, a, b, plan) { return y }
        let pa = try ptr(a, "binary"), pb = try ptr(b, "binary")
        let shape = plan.outputShape
        let (out, po) = try allocate(shape)
        if plan.sameShape {
            parallelFor(shape.count, costPerItem: 2) { r in VectorLoops.binary(op, pa, pb, out: po, r) }
            return out
        }
        // Walk rows of the innermost axis: one offset computation per row, strided inner loop.
        let inner = shape.rank > 0 ? shape.dims[shape.rank - 1] : 1
        let rows = shape.count / max(inner, 1)
        let sa = shape.rank > 0 ? plan.aStrides[shape.rank - 1] : 0
        let sb = shape.rank > 0 ? plan.bStrides[shape.rank - 1] : 0
        parallelFor(rows, costPerItem: inner) { range in
            for row in range {
                let (oa, ob) = plan.offsets(row * inner)
                let o = po + row * inner, x = pa + oa, y = pb + ob
                switch op {
                case .add: for j in 0..<inner { o[j] = x[j * sa] + y[j * sb] }
                case .sub: for j in 0..<inner { o[j] = x[j * sa] - y[j * sb] }
                case .mul: for j in 0..<inner { o[j] = x[j * sa] * y[j * sb] }
                case .div: for j in 0..<inner { o[j] = x[j * sa] / y[j * sb] }
                }
            }
        }
        return out
    }

    public func guidedReLUBackward(_ gradOutput: DeviceArray, value: DeviceArray) throws -> DeviceArray? {
        guard gradOutput.shape == value.shape else { return nil }
        // Elementwise, so any layout the two share: a channel-blocked value keeps its layout.
        let out: DeviceArray, pg: UnsafeMutablePointer<Float>, pv: UnsafeMutablePointer<Float>, po: UnsafeMutablePointer<Float>, count: Int
        if let vs = blockedStorage(value), let dnnl {
            let gs = try blocked(gradOutput, "guidedReLUBackward", dnnl)
            guard gs.layout == vs.layout else { return nil }
            let os: CPUStorage
            (out, os) = try allocateLike(vs, value.shape)
            (pg, pv, po, count) = (gs.pointer, vs.pointer, os.pointer, vs.count)
        } else {
            (pg, pv) = (try ptr(gradOutput, "guidedReLUBackward"), try ptr(value, "guidedReLUBackward"))
            (out, po) = try allocate(value.shape)
            count = value.shape.count
        }
        parallelFor(count, costPerItem: 2) { r in
            let i = r.lowerBound
            xai_guided_relu_backward(pg + i, pv + i, po + i, r.count)
        }
        return out
    }

    public func fusedStabilizedDivide(_ r: DeviceArray, by z: DeviceArray, stabilizer s: Float) throws -> DeviceArray? {
        guard r.shape == z.shape else { return nil }
        let pr = try ptr(r, "stabilizedDivide"), pz = try ptr(z, "stabilizedDivide")
        let (out, po) = try allocate(r.shape)
        parallelFor(r.shape.count, costPerItem: 2) { range in
            let i = range.lowerBound
            xai_stabilized_divide(pr + i, pz + i, po + i, range.count, s)
        }
        return out
    }

    // MARK: Reductions

    public func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        if let y = try blockedSpatialReduce(op, x, plan) { return y }
        let px = try ptr(x, "reduce")
        let (out, po) = try allocate(plan.outputShape)
        let r = plan.reducedCount
        parallelFor(plan.outputCount, costPerItem: r) { range in
            for o in range {
                let base = px + plan.baseOffset(o)
                var acc: Double = op == .max ? -.infinity : (op == .min ? .infinity : 0)
                for j in 0..<r {
                    let v = Double(base[plan.reducedOffset(j)])
                    switch op {
                    case .max: acc = max(acc, v)
                    case .min: acc = min(acc, v)
                    case .sum, .mean: acc += v
                    }
                }
                po[o] = Float(op == .mean ? acc / Double(r) : acc)
            }
        }
        return out
    }

    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        if let y = try blockedSpatialReduceBackward(op, gradOutput: gradOutput, input: x, plan) { return y }
        let pg = try ptr(gradOutput, "reduceBackward"), px = try ptr(x, "reduceBackward")
        let (out, po) = try allocate(x.shape)
        let r = plan.reducedCount
        parallelFor(plan.outputCount, costPerItem: r) { range in
            for o in range {
                let base = plan.baseOffset(o)
                switch op {
                case .sum, .mean:
                    let g = op == .mean ? pg[o] / Float(r) : pg[o]
                    for j in 0..<r { po[base + plan.reducedOffset(j)] = g }
                case .max, .min:
                    // The extremum and how many elements tie for it (min as the max of -x).
                    let sign: Float = op == .max ? 1 : -1
                    var m = -Float.infinity, ties = 0
                    for j in 0..<r {
                        let v = sign * px[base + plan.reducedOffset(j)]
                        if v > m { m = v; ties = 1 } else if v == m { ties += 1 }
                    }
                    let g = pg[o] / Float(ties)
                    for j in 0..<r {
                        let i = base + plan.reducedOffset(j)
                        po[i] = sign * px[i] == m ? g : 0
                    }
                }
            }
        }
        return out
    }

    public func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray {
        let px = try ptr(x, "layerNorm"), ps = try ptr(scale, "layerNorm")
        let pb = try bias.map { try ptr($0, "layerNorm") }
        let (out, po) = try allocate(x.shape)
        let (cols, eps) = (plan.columns, plan.epsilon)
        parallelFor(plan.rows, costPerItem: cols * 8) { r in
            xai_layer_norm_rows(px + r.lowerBound * cols, ps, pb, po + r.lowerBound * cols, r.count, cols, eps)
        }
        return out
    }

    public func layerNormBackward(_ gradOutput: DeviceArray, input x: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray {
        let pg = try ptr(gradOutput, "layerNormBackward"), px = try ptr(x, "layerNormBackward"), ps = try ptr(scale, "layerNormBackward")
        let (out, po) = try allocate(x.shape)
        let (cols, eps) = (plan.columns, plan.epsilon)
        parallelFor(plan.rows, costPerItem: cols * 16) { r in
            xai_layer_norm_backward_rows(pg + r.lowerBound * cols, px + r.lowerBound * cols, ps, po + r.lowerBound * cols, r.count, cols, eps)
        }
        return out
    }

    public func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
        let px = try ptr(x, "softmax")
        let (out, po) = try allocate(x.shape)
        if inner == 1 {
            // Along the last axis (attention over keys, a classifier's output): vectorised rows.
            parallelFor(outer, costPerItem: n * 8) { r in xai_softmax_rows(px + r.lowerBound * n, po + r.lowerBound * n, r.count, n, log ? 1 : 0) }
            return out
        }
        parallelFor(outer * inner, costPerItem: n * 8) { range in
            for t in range {
                let base = (t / inner) * n * inner + t % inner
                var m = -Float.infinity
                for j in 0..<n { m = max(m, px[base + j * inner]) }
                var sum: Float = 0
                for j in 0..<n { sum += expf(px[base + j * inner] - m) }
                let logSum = logf(sum)
                for j in 0..<n {
                    let i = base + j * inner
                    po[i] = log ? px[i] - m - logSum : expf(px[i] - m) / sum
                }
            }
        }
        return out
    }

    public func softmaxBackward(_ gy: DeviceArray, output y: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
        let pg = try ptr(gy, "softmaxBackward"), py = try ptr(y, "softmaxBackward")
        let (out, po) = try allocate(y.shape)
        if inner == 1 {
            parallelFor(outer, costPerItem: n * 4) { r in
                xai_softmax_backward_rows(pg + r.lowerBound * n, py + r.lowerBound * n, po + r.lowerBound * n, r.count, n, log ? 1 : 0)
            }
            return out
        }
        parallelFor(outer * inner, costPerItem: n * 4) { range in
            for t in range {
                let base = (t / inner) * n * inner + t % inner
                var s: Float = 0
                for j in 0..<n { let i = base + j * inner; s += log ? pg[i] : pg[i] * py[i] }
                for j in 0..<n {
                    let i = base + j * inner
                    po[i] = log ? pg[i] - expf(py[i]) * s : py[i] * (pg[i] - s)
                }
            }
        }
        return out
    }
}

/// The plans the convolution tuner records (`nil`: not recording).
final class PlanRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String: ConvPlan]?

    var plans: [String: ConvPlan]? {
        get { lock.lock(); defer { lock.unlock() }; return recorded }
        set { lock.lock(); recorded = newValue; lock.unlock() }
    }

    func record(_ geometry: String, _ plan: ConvPlan) {
        lock.lock()
        if recorded != nil { recorded?[geometry] = plan }
        lock.unlock()
    }
}

extension CPUBackend {
    private static let warnedLock = NSLock()
    nonisolated(unsafe) private static var warned = Set<String>()

    /// Prints a warning to standard error once per process.
    static func warnOnce(_ message: String) {
        warnedLock.lock(); defer { warnedLock.unlock() }
        guard warned.insert(message).inserted else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Whether a layer Winograd could compute may take it: always, but under the `auto` policy
    /// a forward-only layer the tuning table measured faster direct. Records the plan for the tuner.
    func tunedForWinograd(_ plan: ConvPlan) -> Bool {
        guard convolutionPolicy == .auto, !plan.exact else { return true }
        let geometry = ConvolutionTuningTable.geometry(plan)
        planRecorder.record(geometry, plan)
        return tuning?.choices[geometry] != .direct
    }
}
