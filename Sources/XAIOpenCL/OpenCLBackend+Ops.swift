import COpenCL
import Foundation
import XAICore

extension OpenCLBackend {

    public func filled(_ shape: Shape, value: Float) throws -> DeviceArray {
        let out = try allocate(shape)
        try launch("elementwise", "fill", global: [shape.count], [.buffer(try mem(out, "fill")), .float(value), .int(shape.count)])
        return out
    }

    // MARK: GEMM

    /// One batched GEMM launch; offsets and strides in elements (see gemm.cl).
    func gemmLaunch(m: Int, n: Int, k: Int, batch: Int = 1,
                    a: cl_mem, aOffset: Int = 0, aRow: Int, aCol: Int, aBatch: Int = 0,
                    b: cl_mem, bOffset: Int = 0, bRow: Int, bCol: Int, bBatch: Int = 0,
                    c: cl_mem, cOffset: Int = 0, ldc: Int, cBatch: Int = 0,
                    alpha: Float = 1, bias: cl_mem? = nil, biasOffset: Int = 0, biasMode: Int = 0, residual: cl_mem? = nil,
                    activation: UnaryOp = .identity, gate: (op: UnaryOp, output: cl_mem)? = nil) throws {
        // The kernels' p0 and p1 are the activation's or, in a backward's store, the gate's.
        if gate != nil && activation != .identity {
            throw XAIError.unsupported(op: "gemm", reason: "a store with both an activation and a gate (an internal error)")
        }
        let (p0, p1) = gate?.op.parameters ?? activation.parameters
        // bias, residual, gate and activation: the epilogue's arguments, the same in every kernel.
        var epilogue: [KernelArg] = [.buffer(bias ?? dummy), .int(biasOffset), .int(bias == nil ? 0 : biasMode)]
        epilogue += [.buffer(residual ?? dummy), .int(residual == nil ? 0 : 1), .buffer(gate?.output ?? dummy), .int(Int(gate?.op.code ?? 0))]
        epilogue += [.int(Int(activation.code)), .float(p0), .float(p1)]
        let global: [Int], local: [Int]?, kernel: String
        var family = "gemm", tiles: LaunchTiles?
        let t = tunables
        var engine = t.gemm.engine
        // Tensor cores take every GEMM, CLBlast's included.
        if tensorCores == nil && engine == .clblast {
            if try clblastGemm(m: m, n: n, k: k, batch: batch, a: a, aOffset: aOffset, aRow: aRow, aCol: aCol, aBatch: aBatch,
                               b: b, bOffset: bOffset, bRow: bRow, bCol: bCol, bBatch: bBatch,
                               c: c, cOffset: cOffset, ldc: ldc, cBatch: cBatch, alpha: alpha) {
                guard bias != nil || residual != nil || activation != .identity || gate != nil else { return }
                let output: [KernelArg] = [.int(m), .int(n), .buffer(c), .int(cOffset), .int(ldc), .int(cBatch)]
                try launch("gemm", "gemm_epilogue", global: [n, m, batch], output + epilogue)
                return
            }
            // Strides CLBlast cannot express (neither unit along a row nor along a column).
            engine = info.isGPU ? .tiled : .rows
        }
        if tensorCores != nil {
            family = "mma"
            kernel = "gemm_mma"
            (global, local, tiles) = tiledLaunch(rows: m, columns: n, batch: batch)
        } else if engine == .rows && aCol == 1 && bRow == 1 && k >= 16 {
            kernel = "gemm_dot"
            global = [(n + 3) / 4, (m + 3) / 4, batch]
            local = t.rowsLocal
        } else if engine == .rows {
            kernel = "gemm_rows"
            global = [(n + 15) / 16, (m + t.cpuRows - 1) / t.cpuRows, batch]
            local = t.rowsLocal
        } else {
            kernel = "gemm_tiled"
            (global, local, tiles) = tiledLaunch(rows: m, columns: n, batch: batch)
        }
        try launch(family, kernel, global: global, local: local, tiles: tiles, [
            .int(m), .int(n), .int(k),
            .buffer(a), .int(aOffset), .int(aRow), .int(aCol), .int(aBatch),
            .buffer(b), .int(bOffset), .int(bRow), .int(bCol), .int(bBatch),
            .buffer(c), .int(cOffset), .int(ldc), .int(cBatch),
            .float(alpha),
        ] + epilogue)
    }

    public func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let (m, n, k, transposeA, transposeB) = (plan.m, plan.n, plan.k, plan.transposeA, plan.transposeB)
        let out = try allocate([m, n])
        try gemmLaunch(m: m, n: n, k: k,
                       a: try mem(a, "gemm"), aRow: transposeA ? 1 : k, aCol: transposeA ? m : 1,
                       b: try mem(b, "gemm"), bRow: transposeB ? 1 : n, bCol: transposeB ? k : 1,
                       c: try mem(out, "gemm"), ldc: n, alpha: alpha, bias: try bias.map { try mem($0, "gemm") }, biasMode: 1,
                       activation: activation)
        return out
    }

    // MARK: Convolution

    private func geometry(_ x: Shape, _ w: Shape, _ y: Shape, _ p: Conv2DParams) -> (KernelArg, KernelArg) {
        (.intVector8([x[1], x[2], x[3], w[2], w[3], y[2], y[3], p.groups]),
         .intVector8([p.strideH, p.strideW, p.padTop, p.padLeft, p.dilationH, p.dilationW]))
    }

    /// The lowering a convolution takes here, forward or backward to its input: the policy's,
    /// where the implicit kernels apply (see ``implicitGeometry(_:backward:)``).
    public func lowering(for plan: ConvPlan, backward: Bool) -> ConvolutionLowering {
        implicitGeometry(plan, backward: backward) == nil ? .im2col : .implicit
    }

    /// The implicit-GEMM kernel geometry for a convolution that takes it, else `nil`: the layer is
    /// neither depthwise nor pointwise (those have kernels of their own), its indices fit the
    /// kernels' 32-bit ints, and
    /// - with tensor cores: the policy's ``ConvolutionLoweringPolicy/tensorCoreLowering(for:backward:tensorCores:)`` is
    ///   implicit (`conv_mma_*`; every GEMM, CLBlast's engine's included, runs on `gemm_mma`);
    /// - else: the policy asks for it for this layer, the engine is our own (CLBlast's sums are not
    ///   our kernels'), and it is not a forward to a single output pixel on the rows engine (im2col
    ///   runs that on gemm_dot, whose sums differ).
    private func implicitGeometry(_ plan: ConvPlan, backward: Bool) -> (KernelArg, KernelArg)? {
        guard !plan.isDepthwise, !plan.isPointwise,
              max(plan.input.count, plan.output.count, plan.weight.count) < Int(Int32.max) else { return nil }
        let (x, w, y, p) = (plan.input, plan.weight, plan.output, plan.params)
        if let tensorCores {
            guard convolutionPolicy.tensorCoreLowering(for: plan, backward: backward, tensorCores: tensorCores) == .implicit else { return nil }
        } else {
            guard tunables.gemm.engine != .clblast, convolutionPolicy.lowering(for: plan, backward: backward) == .implicit else { return nil }
            if !backward && tunables.gemm.engine == .rows && y[2] * y[3] == 1 && x[1] / p.groups * w[2] * w[3] >= 16 { return nil }
        }
        return (.intVector8([x[1], x[2], x[3], w[2], w[3], y[2], y[3], p.groups]),
                .intVector8([p.strideH, p.strideW, p.padTop, p.padLeft, p.dilationH, p.dilationW, y[1], x[0]]))
    }

    /// Whether a forward takes Winograd: see ``winogradTile(for:)``.
    public func usesWinograd(_ plan: ConvPlan) -> Bool { winogradTile(for: plan) != nil }

    /// The Winograd tile a forward takes, or `nil` for the exact lowering: `--fast`, a forward-only
    /// pass, a 3x3 stride-1 undilated ungrouped layer, and the tile this backend was opened with or
    /// the policy's per-layer choice (``ConvolutionLoweringPolicy/winograd(for:)``). Any GEMM
    /// engine: the products are one batched launch of it.
    public func winogradTile(for plan: ConvPlan) -> WinogradTile? {
        let p = plan.params
        guard fastConvolutions && !plan.exact && plan.weight[2] == 3 && plan.weight[3] == 3 && p.strideH == 1 && p.strideW == 1
            && p.dilationH == 1 && p.dilationW == 1 && p.groups == 1 && max(plan.input.count, plan.output.count) < Int(Int32.max),
            let tile = convolutionPolicy.winograd(for: plan) else { return nil }
        return forcedWinogradTile ?? tile
    }

    /// Winograd F(m x m, 3x3) (conv.cl), m = `tile`: the weights' transform (made once per live
    /// weight array, ``WinogradWeightCache``), then per chunk of images the input tiles'
    /// transform, (m + 2)^2 GEMMs (one batched launch) and the output transform with the bias,
    /// residual and activation. Chunks keep the two transformed buffers within a quarter of the
    /// memory budget.
    private func winogradConv2d(_ plan: ConvPlan, tile: WinogradTile, x: cl_mem, weight: DeviceArray, bias: cl_mem?, residual: cl_mem?, output: cl_mem,
                                activation: UnaryOp) throws {
        let (n, cin, h, w) = (plan.input[0], plan.input[1], plan.input[2], plan.input[3])
        let (cout, oh, ow) = (plan.output[1], plan.output[2], plan.output[3])
        let m = tile.rawValue, products = tile.transformedSide * tile.transformedSide, name = tile.kernelPrefix
        let (th, tw) = ((oh + m - 1) / m, (ow + m - 1) / m)
        let u = try winogradWeights.transformed(of: try storage(weight, "conv2d"), shape: weight.shape, tile: tile) {
            let u = try allocate([products, cout, cin])
            try launch("conv", "\(name)_weights", global: [cout * cin], [.buffer(try mem(weight, "conv2d")), .buffer(try mem(u, "conv2d")), .int(cout), .int(cin)])
            return u
        }
        let um = try mem(u, "conv2d")
        let perImage = products * (cin + cout) * th * tw * 4
        let chunk = max(1, min(n, (memoryBudget / 4) / max(perImage, 1), info.maxAllocationBytes / max(products * max(cin, cout) * th * tw * 4, 1)))
        let tilesPerChunk = chunk * th * tw
        let v = try allocate([products, cin, tilesPerChunk]), mt = try allocate([products, cout, tilesPerChunk])
        let (vm, mm) = (try mem(v, "conv2d"), try mem(mt, "conv2d"))
        let (p0, p1) = activation.parameters
        var n0 = 0
        while n0 < n {
            let images = min(chunk, n - n0), tiles = images * th * tw
            try launch("conv", "\(name)_input", global: [cin * tiles], [
                .buffer(x), .buffer(vm), .int(n0), .int(images), .intVector8([cin, h, w, th, tw, plan.params.padTop, plan.params.padLeft, 0]),
            ])
            try gemmLaunch(m: cout, n: tiles, k: cin, batch: products, a: um, aRow: cin, aCol: 1, aBatch: cout * cin,
                           b: vm, bRow: tiles, bCol: 1, bBatch: cin * tiles, c: mm, ldc: tiles, cBatch: cout * tiles)
            try launch("conv", "\(name)_output", global: [cout * tiles], [
                .buffer(mm), .buffer(bias ?? dummy), .int(bias == nil ? 0 : 1), .buffer(residual ?? dummy), .int(residual == nil ? 0 : 1),
                .buffer(output), .int(n0), .int(images), .intVector8([cout, oh, ow, th, tw, 0, 0, 0]),
                .int(Int(activation.code)), .float(p0), .float(p1),
            ])
            n0 += images
        }
    }

    /// Launch geometry of an implicit convolution kernel: rows of the GEMM (channels of one group),
    /// the image the columns cover (the output forward, the input backward: height x width),
    /// images, groups; and the tile it was sized for. The rows engine runs up to 16 columns of one
    /// image row, image and group per work-item; the tiled and tensor-core kernels fold the images
    /// into the columns, their tile picked by ``tileChoice``.
    private func implicitLaunch(rows: Int, height: Int, width: Int, images: Int, groups: Int) -> (global: [Int], local: [Int]?, tiles: LaunchTiles?) {
        let t = tunables
        if tensorCores == nil && t.gemm.engine == .rows {
            return ([height * ((width + 15) / 16), (rows + t.cpuRows - 1) / t.cpuRows, images * groups], t.rowsLocal, nil)
        }
        return tiledLaunch(rows: rows, columns: images * height * width, batch: groups)
    }

    /// The tile and launch geometry of a tensor-core or tiled kernel over a `rows x columns` GEMM,
    /// `batch` of them along axis 2, its tile picked by ``tileChoice``: one definition for the GEMMs
    /// and both implicit convolutions, so a launch and its kernel's tile cannot disagree.
    private func tiledLaunch(rows: Int, columns: Int, batch: Int) -> (global: [Int], local: [Int]?, tiles: LaunchTiles?) {
        func blocks(_ n: Int, _ block: Int) -> Int { (n + block - 1) / block }
        if tensorCores != nil {
            let tiling = tileChoice.pick(MMATiling.ladder, rows: rows, columns: columns, batch: batch)
            return ([blocks(columns, tiling.blockColumns) * tiling.threads, blocks(rows, tiling.blockRows), batch],
                    [tiling.threads, 1, 1], .mma(tiling))
        }
        let config = tileChoice.pick(tiledLadder, rows: rows, columns: columns, batch: batch)
        let side = config.workGroupSide
        return ([blocks(columns, config.tile) * side, blocks(rows, config.tile) * side, batch], [side, side, 1], .tiled(config))
    }

    /// The implicit kernel of one direction (`forward` or `backward`; one argument list for all
    /// three): on the tensor cores (mma.cl), else the engine's (gemm.cl's rows or tiled).
    private func implicitKernel(_ direction: String) -> (family: String, kernel: String) {
        if tensorCores != nil { return ("mma", "conv_mma_\(direction)") }
        return ("gemm", tunables.gemm.engine == .rows ? "conv_rows_\(direction)" : "conv_tiled_\(direction)")
    }

    /// Images per im2col chunk so that the column workspace fits a quarter of the memory budget.
    private func imagesPerChunk(_ input: Shape, _ weight: Shape, _ output: Shape) -> Int {
        let perImage = input[1] * weight[2] * weight[3] * output[2] * output[3] * 4
        return max(1, min(input[0], (memoryBudget / 4) / max(perImage, 1), info.maxAllocationBytes / max(perImage, 1)))
    }

    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                       activation: UnaryOp) throws -> DeviceArray {
        if let residual, plan.isDepthwise {
            // The depthwise kernel has no residual operand: the elementwise kernels add it.
            let y = try conv2d(x, weight: weight, bias: bias, residual: nil, plan: plan, activation: .identity)
            let sum = try binary(.add, y, residual)
            return activation == .identity ? sum : try unary(activation, sum)
        }
        let (os, p) = (plan.output, plan.params)
        let xm = try mem(x, "conv2d"), wm = try mem(weight, "conv2d"), bm = try bias.map { try mem($0, "conv2d") }
        // The skip connection is added in the GEMM's store, laid out as the output.
        let rm = try residual.map { try mem($0, "conv2d") }
        let out = try allocate(os)
        let ym = try mem(out, "conv2d")
        let (n, cin, cout) = (x.shape[0], x.shape[1], os[1])
        let (g0, g1) = geometry(x.shape, weight.shape, os, p)
        let (p0, p1) = activation.parameters
        let plane = os[2] * os[3]
        if plan.isDepthwise {
            try launch("conv", "conv2d_depthwise", global: [os.count], [
                .buffer(xm), .buffer(wm), .buffer(bm ?? dummy), .int(bm == nil ? 0 : 1), .buffer(ym), .int(n), g0, g1,
                .int(Int(activation.code)), .float(p0), .float(p1),
            ])
            return out
        }
        let cinG = cin / p.groups, coutG = cout / p.groups
        let kG = cinG * weight.shape[2] * weight.shape[3]
        if let tile = winogradTile(for: plan) {
            try winogradConv2d(plan, tile: tile, x: xm, weight: weight, bias: bm, residual: rm, output: ym, activation: activation)
            return out
        }
        if let (i0, i1) = implicitGeometry(plan, backward: false) {
            let (global, local, tiles) = implicitLaunch(rows: coutG, height: os[2], width: os[3], images: n, groups: p.groups)
            let (family, kernel) = implicitKernel("forward")
            try launch(family, kernel, global: global, local: local, tiles: tiles, [
                .buffer(xm), .buffer(wm), .buffer(bm ?? dummy), .int(bm == nil ? 0 : 1), .buffer(rm ?? dummy), .int(rm == nil ? 0 : 1),
                .buffer(ym), i0, i1, .int(Int(activation.code)), .float(p0), .float(p1),
            ])
            return out
        }
        if plan.isPointwise {
            try gemmLaunch(m: cout, n: plane, k: cin, batch: n, a: wm, aRow: cin, aCol: 1,
                           b: xm, bRow: plane, bCol: 1, bBatch: cin * plane,
                           c: ym, ldc: plane, cBatch: cout * plane, bias: bm, biasMode: 2, residual: rm, activation: activation)
            return out
        }
        let chunk = imagesPerChunk(x.shape, weight.shape, os)
        let kAll = cin * weight.shape[2] * weight.shape[3]
        let col = try allocate([chunk * kAll * plane])
        let cm = try mem(col, "conv2d")
        var img0 = 0
        while img0 < n {
            let nb = min(chunk, n - img0)
            try launch("conv", "conv2d_im2col", global: [nb * kAll * plane], [.buffer(xm), .int(img0 * cin * x.shape[2] * x.shape[3]), .buffer(cm), .int(nb), g0, g1])
            for g in 0..<p.groups {
                try gemmLaunch(m: coutG, n: plane, k: kG, batch: nb,
                               a: wm, aOffset: g * coutG * kG, aRow: kG, aCol: 1,
                               b: cm, bOffset: g * kG * plane, bRow: plane, bCol: 1, bBatch: kAll * plane,
                               c: ym, cOffset: (img0 * cout + g * coutG) * plane, ldc: plane, cBatch: cout * plane,
                               bias: bm, biasOffset: g * coutG, biasMode: 2, residual: rm, activation: activation)
            }
            img0 += nb
        }
        return out
    }

    public func conv2dBackwardInput(_ gy: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray {
        try conv2dBackwardInput(gy, weight: weight, plan: plan, fusing: GradientStore())
    }

    /// The input gradient with `store` done in the kernels' stores, on every lowering.
    public func conv2dBackwardInput(_ gy: DeviceArray, weight: DeviceArray, plan: ConvPlan, store: GradientStore) throws -> DeviceArray? {
        try conv2dBackwardInput(gy, weight: weight, plan: plan, fusing: store)
    }

    /// The one body of both.
    private func conv2dBackwardInput(_ gy: DeviceArray, weight: DeviceArray, plan: ConvPlan, fusing store: GradientStore) throws -> DeviceArray {
        let (os, p, inputShape) = (plan.output, plan.params, plan.input)
        let gm = try mem(gy, "conv2dBackwardInput"), wm = try mem(weight, "conv2dBackwardInput")
        let out = try allocate(inputShape)
        let dxm = try mem(out, "conv2dBackwardInput")
        let (n, cin, cout) = (inputShape[0], inputShape[1], os[1])
        let (g0, g1) = geometry(inputShape, weight.shape, os, p)
        let plane = os[2] * os[3]
        let accumulated = try store.accumulated.map { try mem($0, "conv2dBackwardInput") }
        let gate = try store.activation.map { (op: $0.op, output: try mem($0.output, "conv2dBackwardInput")) }
        let (gp0, gp1) = gate?.op.parameters ?? (0, 0)
        let storeArgs: [KernelArg] = [.buffer(accumulated ?? dummy), .int(accumulated == nil ? 0 : 1),
                                      .buffer(gate?.output ?? dummy), .int(Int(gate?.op.code ?? 0)), .float(gp0), .float(gp1)]
        if plan.isDepthwise {
            try launch("conv", "conv2d_depthwise_backward", global: [inputShape.count], [.buffer(gm), .buffer(wm), .buffer(dxm), .int(n), g0, g1] + storeArgs)
            return out
        }
        let cinG = cin / p.groups, coutG = cout / p.groups
        let kG = cinG * weight.shape[2] * weight.shape[3]
        if let (i0, i1) = implicitGeometry(plan, backward: true) {
            let (global, local, tiles) = implicitLaunch(rows: cinG, height: inputShape[2], width: inputShape[3], images: n, groups: p.groups)
            let (family, kernel) = implicitKernel("backward")
            try launch(family, kernel, global: global, local: local, tiles: tiles,
                       [.buffer(gm), .buffer(wm), .buffer(dxm), i0, i1] + storeArgs)
            return out
        }
        if plan.isPointwise {
            try gemmLaunch(m: cin, n: plane, k: cout, batch: n, a: wm, aRow: 1, aCol: cin,
                           b: gm, bRow: plane, bCol: 1, bBatch: cout * plane, c: dxm, ldc: plane, cBatch: cin * plane,
                           residual: accumulated, gate: gate)
            return out
        }
        let chunk = imagesPerChunk(inputShape, weight.shape, os)
        let kAll = cin * weight.shape[2] * weight.shape[3]
        let col = try allocate([chunk * kAll * plane])
        let cm = try mem(col, "conv2dBackwardInput")
        let imageSize = cin * inputShape[2] * inputShape[3]
        var img0 = 0
        while img0 < n {
            let nb = min(chunk, n - img0)
            for g in 0..<p.groups {
                try gemmLaunch(m: kG, n: plane, k: coutG, batch: nb,
                               a: wm, aOffset: g * coutG * kG, aRow: 1, aCol: kG,
                               b: gm, bOffset: (img0 * cout + g * coutG) * plane, bRow: plane, bCol: 1, bBatch: cout * plane,
                               c: cm, cOffset: g * kG * plane, ldc: plane, cBatch: kAll * plane)
            }
            try launch("conv", "conv2d_col2im", global: [nb * imageSize], [.buffer(cm), .buffer(dxm), .int(img0 * imageSize), .int(nb), g0, g1] + storeArgs)
            img0 += nb
        }
        return out
    }

    // MARK: Pooling

    private func poolArgs(_ x: Shape, _ y: Shape, _ p: Pool2DParams) -> [KernelArg] {
        [.intVector8([x[2], x[3], y[2], y[3], p.kernelH, p.kernelW, p.strideH, p.strideW]), .intVector4([p.padTop, p.padLeft, p.padBottom, p.padRight]),
         .int(p.kind == .max ? 1 : 0), .int(p.countIncludePad ? 1 : 0)]
    }

    public func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        let (os, p) = (plan.output, plan.params)
        let out = try allocate(os)
        try launch("pool", "pool2d_forward", global: [os.count],
                   [.buffer(try mem(x, "pool2d")), .buffer(try mem(out, "pool2d")), .int(x.shape[0] * x.shape[1])] + poolArgs(x.shape, os, p))
        return out
    }

    public func pool2dBackward(_ gy: DeviceArray, input x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        let (os, p) = (plan.output, plan.params)
        let out = try allocate(x.shape)
        try launch("pool", "pool2d_backward", global: [x.shape.count],
                   [.buffer(try mem(x, "pool2dBackward")), .buffer(try mem(gy, "pool2dBackward")), .buffer(try mem(out, "pool2dBackward")),
                    .int(x.shape[0] * x.shape[1])] + poolArgs(x.shape, os, p))
        return out
    }

    // MARK: Elementwise

    public func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray {
        let op = plan.op
        let out = try allocate(x.shape)
        let (p0, p1) = op.parameters
        try launch("elementwise", "unary_forward", global: [x.shape.count], [
            .buffer(try mem(x, "unary")), .buffer(try mem(out, "unary")), .int(x.shape.count), .int(Int(op.code)), .float(p0), .float(p1),
        ])
        return out
    }

    public func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray {
        let (op, valueIsOutput) = (plan.op, plan.valueIsOutput)
        let out = try allocate(value.shape)
        let (p0, p1) = op.parameters
        try launch("elementwise", "unary_backward", global: [value.shape.count], [
            .buffer(try mem(gradOutput, "unaryBackward")), .buffer(try mem(value, "unaryBackward")), .buffer(try mem(out, "unaryBackward")),
            .int(value.shape.count), .int(Int(op.code)), .float(p0), .float(p1), .int(valueIsOutput ? 1 : 0),
        ])
        return out
    }

    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray {
        let out = try allocate(plan.outputShape)
        let n = plan.outputShape.count
        let am = try mem(a, "binary"), bm = try mem(b, "binary"), om = try mem(out, "binary")
        if plan.sameShape {
            try launch("elementwise", "binary_same", global: [n], [.buffer(am), .buffer(bm), .buffer(om), .int(n), .int(Int(op.rawValue))])
            return out
        }
        guard plan.outputShape.rank <= 8 else { throw XAIError.unsupported(op: "binary(\(op))", reason: "more than 8 axes") }
        try launch("elementwise", "binary_broadcast", global: [n], [
            .buffer(am), .buffer(bm), .buffer(om), .int(n), .int(Int(op.rawValue)), .int(plan.outputShape.rank),
            .intVector8(plan.outputShape.dims), .intVector8(plan.aStrides), .intVector8(plan.bStrides),
        ])
        return out
    }

    // MARK: Reductions

    /// Merges neighbouring axes that are contiguous in memory (stride[i] == extent[i+1] * stride[i+1]):
    /// the same offsets with fewer divisions in the kernels.
    static func mergeAxes(_ dims: [Int], _ strides: [Int]) -> ([Int], [Int]) {
        var d: [Int] = [], s: [Int] = []
        for (extent, stride) in zip(dims, strides) {
            if let last = s.last, last == extent * stride {
                d[d.count - 1] *= extent
                s[s.count - 1] = stride
            } else {
                d.append(extent)
                s.append(stride)
            }
        }
        return (d, s)
    }

    private func planArgs(_ plan: ReducePlan, _ op: String) throws -> [KernelArg] {
        let (kd, ks) = Self.mergeAxes(plan.keptDims, plan.keptStrides)
        let (rd, rs) = Self.mergeAxes(plan.reducedDims, plan.reducedStrides)
        guard kd.count <= 8, rd.count <= 8 else { throw XAIError.unsupported(op: op, reason: "more than 8 non-contiguous axes") }
        return [.int(plan.outputCount), .int(plan.reducedCount), .int(kd.count), .intVector8(kd), .intVector8(ks),
                .int(rd.count), .intVector8(rd), .intVector8(rs)]
    }

    public func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        let reduceGroup = tunables.reduceGroup
        let out = try allocate(plan.outputShape)
        let args: [KernelArg] = [.buffer(try mem(x, "reduce")), .buffer(try mem(out, "reduce"))] + (try planArgs(plan, "reduce")) + [.int(Int(op.rawValue))]
        // One work-item per output leaves most of a device idle when outputs are few and long.
        let parallelism = info.isGPU ? 16 * reduceGroup * max(info.computeUnits, 1) : 4 * max(info.computeUnits, 1)
        if plan.reducedCount >= 4 * reduceGroup && plan.outputCount < parallelism {
            try launch("reduce", "reduce_forward_group", global: [plan.outputCount * reduceGroup], local: [reduceGroup], args)
        } else {
            try launch("reduce", "reduce_forward", global: [plan.outputCount], args)
        }
        return out
    }

    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        let out = try allocate(x.shape)
        try launch("reduce", "reduce_backward", global: [plan.outputCount],
                   [.buffer(try mem(x, "reduceBackward")), .buffer(try mem(gradOutput, "reduceBackward")), .buffer(try mem(out, "reduceBackward"))]
                   + planArgs(plan, "reduceBackward") + [.int(Int(op.rawValue))])
        return out
    }

    public func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
        let out = try allocate(x.shape)
        try launch("softmax", "softmax_forward", global: [outer * inner], [
            .buffer(try mem(x, "softmax")), .buffer(try mem(out, "softmax")), .int(outer * inner), .int(n), .int(inner), .int(log ? 1 : 0),
        ])
        return out
    }

    public func softmaxBackward(_ gy: DeviceArray, output y: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
        let out = try allocate(y.shape)
        try launch("softmax", "softmax_backward", global: [outer * inner], [
            .buffer(try mem(gy, "softmaxBackward")), .buffer(try mem(y, "softmaxBackward")), .buffer(try mem(out, "softmaxBackward")),
            .int(outer * inner), .int(n), .int(inner), .int(log ? 1 : 0),
        ])
        return out
    }

    public func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray {
        let out = try allocate(x.shape)
        let s = try mem(scale, "layerNorm")
        try launch("softmax", "layer_norm_forward", global: [plan.rows], [
            .buffer(try mem(x, "layerNorm")), .buffer(s), .buffer(try bias.map { try mem($0, "layerNorm") } ?? s), .buffer(try mem(out, "layerNorm")),
            .int(plan.rows), .int(plan.columns), .float(plan.epsilon), .int(bias == nil ? 0 : 1),
        ])
        return out
    }

    public func layerNormBackward(_ gradOutput: DeviceArray, input x: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray {
        let out = try allocate(x.shape)
        try launch("softmax", "layer_norm_backward", global: [plan.rows], [
            .buffer(try mem(gradOutput, "layerNormBackward")), .buffer(try mem(x, "layerNormBackward")), .buffer(try mem(scale, "layerNormBackward")),
            .buffer(try mem(out, "layerNormBackward")), .int(plan.rows), .int(plan.columns), .float(plan.epsilon),
        ])
        return out
    }

    // MARK: Resampling

    public func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (height, width, alignCorners) = (plan.output[2], plan.output[3], plan.alignCorners)
        let out = try allocate(plan.output)
        try launch("resize", "resize_bilinear_forward", global: [out.shape.count], [
            .buffer(try mem(x, "resizeBilinear")), .buffer(try mem(out, "resizeBilinear")), .int(x.shape[0] * x.shape[1]),
            .intVector4([x.shape[2], x.shape[3], height, width]), .int(alignCorners ? 1 : 0),
        ])
        return out
    }

    public func resizeBilinearBackward(_ gy: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (inputShape, alignCorners) = (plan.input, plan.alignCorners)
        let out = try allocate(inputShape)
        try launch("resize", "resize_bilinear_backward", global: [inputShape.count], [
            .buffer(try mem(gy, "resizeBilinearBackward")), .buffer(try mem(out, "resizeBilinearBackward")), .int(inputShape[0] * inputShape[1]),
            .intVector4([inputShape[2], inputShape[3], gy.shape[2], gy.shape[3]]), .int(alignCorners ? 1 : 0),
        ])
        return out
    }
}
