import Foundation
import XAICore

/// A superpixel label map: `labels[y * width + x]` in `0..<count`.
public struct SegmentMap: Sendable, Equatable {
    public let height: Int, width: Int
    public let labels: [Int32]
    public let count: Int

    /// Relabels arbitrary integer ids compactly to `0..<count` in order of first appearance.
    public init(height: Int, width: Int, ids: [Int]) throws {
        guard ids.count == height * width, height > 0, width > 0 else {
            throw XAIError.shapeMismatch(op: "segments", message: "\(ids.count) labels for a \(height)x\(width) image")
        }
        var compact: [Int: Int32] = [:]
        var labels = [Int32](repeating: 0, count: ids.count)
        for (i, id) in ids.enumerated() {
            if let c = compact[id] { labels[i] = c } else {
                let c = Int32(compact.count)
                compact[id] = c
                labels[i] = c
            }
        }
        self.height = height
        self.width = width
        self.labels = labels
        count = compact.count
    }

    /// The labels as an `[H, W]` float tensor (the layout the mask kernels read).
    public var tensor: Tensor { Tensor(unchecked: [height, width], labels.map(Float.init)) }

    /// Pixels per segment.
    public var sizes: [Int] {
        var s = [Int](repeating: 0, count: count)
        for l in labels { s[Int(l)] += 1 }
        return s
    }
}

/// How segment-based methods (LIME, KernelSHAP) split an image into features.
public enum Segmentation: Sendable {
    /// SLIC superpixels in CIELAB (scikit-image's algorithm and defaults).
    case slic(SLIC)
    /// A regular grid of `rows x columns` rectangles.
    case grid(rows: Int, columns: Int)
    /// A user label map `[H, W]` (every image) or `[N, H, W]` (one per image), any integer ids.
    case labels(Tensor)

    /// The segments of image `index` of a batch, `image` being that `[1, C, H, W]` image.
    public func segment(_ image: Tensor, index: Int) throws -> SegmentMap {
        let (h, w) = (image.shape[2], image.shape[3])
        switch self {
        case .slic(let s): return try s.segment(image)
        case .grid(let rows, let columns):
            guard rows >= 1, columns >= 1, rows <= h, columns <= w else {
                throw XAIError.invalidArgument(op: "--segments", message: "a \(rows)x\(columns) grid does not fit a \(h)x\(w) image")
            }
            return try SegmentMap(height: h, width: w, ids: (0..<(h * w)).map { p in (p / w) * rows / h * columns + (p % w) * columns / w })
        case .labels(let t):
            let plane = h * w
            let spatial = Array(t.shape.dims.suffix(2))
            guard spatial == [h, w], t.shape.rank == 2 || (t.shape.rank == 3 && index < t.shape[0]) else {
                throw XAIError.shapeMismatch(op: "--feature-mask", message: "label map \(t.shape) for \(h)x\(w) images (image \(index))")
            }
            let offset = t.shape.rank == 2 ? 0 : index * plane
            return try SegmentMap(height: h, width: w, ids: t.scalars[offset..<(offset + plane)].map { Int($0) })
        }
    }
}

/// SLIC superpixels (Achanta et al.) as scikit-image computes them: the image is rescaled to
/// [0, 1], converted to CIELAB, seeded on a regular grid, clustered by k-means in (Lab /
/// compactness, position / step) space within a 2-step window of each centre, and finally made
/// connected (components under half the mean segment size merge into a neighbour).
public struct SLIC: Sendable {
    public var segments: Int
    public var compactness: Double
    public var iterations: Int
    /// Gaussian pre-smoothing in pixels (0: none).
    public var sigma: Float
    public var enforceConnectivity: Bool
    public var minSizeFactor: Double
    public var maxSizeFactor: Double

    /// scikit-image's defaults: 100 segments, compactness 10, 10 iterations, no smoothing.
    public init(segments: Int = 100, compactness: Double = 10, iterations: Int = 10, sigma: Float = 0,
                enforceConnectivity: Bool = true, minSizeFactor: Double = 0.5, maxSizeFactor: Double = 3) {
        self.segments = segments
        self.compactness = compactness
        self.iterations = iterations
        self.sigma = sigma
        self.enforceConnectivity = enforceConnectivity
        self.minSizeFactor = minSizeFactor
        self.maxSizeFactor = maxSizeFactor
    }

    /// Grid seeds like scikit-image's `regular_grid` over (1, H, W): per-axis steps of about
    /// `(H W / n)^(1/2)`, starting half a step in.
    static func seeds(height: Int, width: Int, count: Int) -> (ys: [Int], xs: [Int], step: Double) {
        let dims = [1.0, Double(height), Double(width)]
        let order = dims.indices.sorted { dims[$0] < dims[$1] }
        let sorted = order.map { dims[$0] }
        let space = dims.reduce(1, *)
        if space <= Double(count) { return (Array(0..<height), Array(0..<width), 1) }
        var steps = [Double](repeating: pow(space / Double(count), 1.0 / 3), count: 3)
        if zip(sorted, steps).contains(where: { $0 < $1 }) {
            for d in 0..<3 {
                steps[d] = sorted[d]
                let rest = sorted[(d + 1)...].reduce(1, *)
                for e in (d + 1)..<3 { steps[e] = pow(rest / Double(count), 1.0 / Double(3 - d - 1)) }
                if !zip(sorted, steps).contains(where: { $0 < $1 }) { break }
            }
        }
        var bySortedAxis = [Double](repeating: 0, count: 3)
        for (k, axis) in order.enumerated() { bySortedAxis[axis] = steps[k] }
        func positions(_ axis: Int, _ size: Int) -> [Int] {
            let start = Int(bySortedAxis[axis] / 2)
            let step = max(1, Int(bySortedAxis[axis].rounded(.toNearestOrEven)))
            return Array(stride(from: start, to: size, by: step))
        }
        let stepY = max(1, Int(bySortedAxis[1].rounded(.toNearestOrEven))), stepX = max(1, Int(bySortedAxis[2].rounded(.toNearestOrEven)))
        return (positions(1, height), positions(2, width), Double(max(stepY, stepX)))
    }

    /// Segments `image` (`[1, C, H, W]` or `[C, H, W]`; three channels are taken as RGB).
    public func segment(_ image: Tensor) throws -> SegmentMap {
        guard segments >= 1, compactness > 0, iterations >= 1 else {
            throw XAIError.invalidArgument(op: "--segments", message: "SLIC needs segments >= 1, compactness > 0 and iterations >= 1")
        }
        let dims = image.shape.dims.suffix(3)
        let (c, h, w) = (dims[dims.startIndex], dims[dims.startIndex + 1], dims[dims.startIndex + 2])
        var pixels = image.scalars
        if sigma > 0 { pixels = try gaussianBlur(Tensor(unchecked: [1, c, h, w], pixels), sigma: sigma).scalars }
        // Rescale to [0, 1] over the whole image, then Lab for colour images.
        let lo = pixels.min() ?? 0, hi = pixels.max() ?? 0
        let scale = hi > lo ? 1 / Double(hi - lo) : 0
        let plane = h * w
        var features = [Double](repeating: 0, count: plane * c)  // pixel-major
        for p in 0..<plane {
            var v = (0..<c).map { Double(pixels[$0 * plane + p] - lo) * scale }
            if c == 3 { v = rgbToLab(v[0], v[1], v[2]) }
            for k in 0..<c { features[p * c + k] = v[k] / compactness }
        }
        let (ys, xs, step) = Self.seeds(height: h, width: w, count: segments)
        let k = ys.count * xs.count
        // Centres: (y, x, colour...). Colours start at zero, as in scikit-image.
        var centres = [Double](repeating: 0, count: k * (2 + c))
        for (i, y) in ys.enumerated() {
            for (j, x) in xs.enumerated() {
                centres[(i * xs.count + j) * (2 + c)] = Double(y)
                centres[(i * xs.count + j) * (2 + c) + 1] = Double(x)
            }
        }
        var nearest = [Int](repeating: 0, count: plane)
        var distance = [Double](repeating: .infinity, count: plane)
        let spatialWeight = 1 / (step * step)
        let reach = 2 * step
        for _ in 0..<iterations {
            for p in 0..<plane { distance[p] = .infinity }
            var changed = false
            for s in 0..<k {
                let cy = centres[s * (2 + c)], cx = centres[s * (2 + c) + 1]
                guard !cy.isNaN else { continue }
                let y0 = Int(max(cy - reach, 0)), y1 = Int(min(cy + reach + 1, Double(h)))
                let x0 = Int(max(cx - reach, 0)), x1 = Int(min(cx + reach + 1, Double(w)))
                guard y0 < y1, x0 < x1 else { continue }
                for y in y0..<y1 {
                    let dy = Double(y) - cy
                    for x in x0..<x1 {
                        let dx = Double(x) - cx
                        var d = (dy * dy + dx * dx) * spatialWeight
                        let p = y * w + x
                        for ch in 0..<c {
                            let t = features[p * c + ch] - centres[s * (2 + c) + 2 + ch]
                            d += t * t
                        }
                        if distance[p] > d {
                            if nearest[p] != s { changed = true }
                            nearest[p] = s
                            distance[p] = d
                        }
                    }
                }
            }
            // New centres: the mean position and colour of their pixels.
            var sums = [Double](repeating: 0, count: k * (2 + c)), counts = [Double](repeating: 0, count: k)
            for p in 0..<plane {
                let s = nearest[p]
                counts[s] += 1
                sums[s * (2 + c)] += Double(p / w)
                sums[s * (2 + c) + 1] += Double(p % w)
                for ch in 0..<c { sums[s * (2 + c) + 2 + ch] += features[p * c + ch] }
            }
            for s in 0..<k {
                // An emptied cluster is dropped (scikit-image's centre becomes NaN and never wins).
                for f in 0..<(2 + c) { centres[s * (2 + c) + f] = counts[s] > 0 ? sums[s * (2 + c) + f] / counts[s] : .nan }
            }
            if !changed { break }
        }
        guard enforceConnectivity else { return try SegmentMap(height: h, width: w, ids: nearest) }
        let meanSize = Double(plane) / Double(k)
        return try SegmentMap(height: h, width: w, ids: connected(nearest, height: h, width: w,
                                                                    minSize: Int(minSizeFactor * meanSize), maxSize: Int(maxSizeFactor * meanSize)))
    }

    /// Relabels 4-connected components in raster order, as scikit-image does: a component smaller
    /// than `minSize` takes the label of the last already relabelled neighbour its search met (or
    /// stays with the next new label), and a component stops growing at `maxSize` pixels.
    func connected(_ labels: [Int], height h: Int, width w: Int, minSize: Int, maxSize: Int) -> [Int] {
        var out = [Int](repeating: -1, count: labels.count)
        var next = 0
        var queue: [Int] = []
        queue.reserveCapacity(labels.count)
        for start in 0..<labels.count where out[start] < 0 {
            var adjacent = next
            queue.removeAll(keepingCapacity: true)
            queue.append(start)
            out[start] = next
            var head = 0
            search: while head < queue.count && queue.count < maxSize {
                let p = queue[head]
                head += 1
                let py = p / w, px = p % w
                for q in [px + 1 < w ? p + 1 : -1, px > 0 ? p - 1 : -1, py + 1 < h ? p + w : -1, py > 0 ? p - w : -1] where q >= 0 {
                    if labels[q] == labels[start] && out[q] < 0 {
                        out[q] = next
                        queue.append(q)
                        if queue.count >= maxSize { break search }
                    } else if out[q] >= 0 && out[q] != next {
                        adjacent = out[q]
                    }
                }
            }
            if queue.count < minSize {
                for p in queue { out[p] = adjacent }
            } else {
                next += 1
            }
        }
        return out
    }
}

/// sRGB in [0, 1] to CIELAB under D65 (scikit-image's `rgb2lab` conventions).
func rgbToLab(_ r: Double, _ g: Double, _ b: Double) -> [Double] {
    func linear(_ v: Double) -> Double { v > 0.04045 ? pow((v + 0.055) / 1.055, 2.4) : v / 12.92 }
    let (lr, lg, lb) = (linear(r), linear(g), linear(b))
    let x = (0.412453 * lr + 0.357580 * lg + 0.180423 * lb) / 0.95047
    let y = 0.212671 * lr + 0.715160 * lg + 0.072169 * lb
    let z = (0.019334 * lr + 0.119193 * lg + 0.950227 * lb) / 1.08883
    func f(_ t: Double) -> Double { t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0 }
    let (fx, fy, fz) = (f(x), f(y), f(z))
    return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)]
}
