import Foundation
import XCTest
import XAI
import XAITestSupport

/// The output writers: overlays put the map where the model input lies in the picture, `.npy`
/// files keep their shape and values, and `results.jsonl` survives NaN.
final class OutputWriterTests: XCTestCase {
    /// A signed map drawn with the diverging colour map leaves the picture unchanged where the map
    /// is zero; a hot square must colour exactly the matching part of the picture, also when the
    /// input covers only a box of it (a centre crop).
    func testOverlayPlacesTheMapOnThePicture() throws {
        let (pw, ph) = (40, 30)
        let picture = try RGBImage(width: pw, height: ph, pixels: [UInt8](repeating: 128, count: pw * ph * 3))
        // A 10x10 map covering the picture's columns 10..<30 (a crop), hot in its top-left 5x5.
        var map = [Float](repeating: 0, count: 100)
        for y in 0..<5 { for x in 0..<5 { map[y * 10 + x] = 1 } }
        map[99] = -1  // signed, so the diverging map (zero = unchanged) is used
        let style = HeatmapStyle(sign: .auto, percentile: 100, alpha: 0.8)
        let out = try style.overlay(picture, map: map, mapWidth: 10, mapHeight: 10,
                                    placement: .init(left: 10, top: 0, width: 20, height: 30))
        func changed(_ x: Int, _ y: Int) -> Bool { out.pixels[(y * pw + x) * 3] != 128 || out.pixels[(y * pw + x) * 3 + 2] != 128 }
        // The hot square: the map's columns 0..<5 are the picture's 10..<20, rows 0..<5 are 0..<15.
        XCTAssertTrue(changed(12, 3) && changed(17, 12), "inside the hot square")
        XCTAssertFalse(changed(5, 3), "left of the crop: outside the map")
        XCTAssertFalse(changed(35, 3), "right of the crop: outside the map")
        XCTAssertFalse(changed(25, 3), "in the crop, where the map is zero")
        XCTAssertFalse(changed(12, 22), "below the hot square")
        // Positive values are drawn red (warm), the negative corner blue (cool).
        let p = (3 * pw + 12) * 3
        XCTAssertGreaterThan(out.pixels[p], out.pixels[p + 2])
        let q = (28 * pw + 28) * 3
        XCTAssertLessThan(out.pixels[q], out.pixels[q + 2])
        // NaN in a map draws as zero instead of trapping.
        var bad = map
        bad[0] = .nan
        bad[1] = .infinity
        XCTAssertNoThrow(try style.overlay(picture, map: bad, mapWidth: 10, mapHeight: 10, placement: .init(left: 0, top: 0, width: 40, height: 30)))
        XCTAssertThrowsError(try style.overlay(picture, map: map, mapWidth: 9, mapHeight: 10, placement: .init(left: 0, top: 0, width: 40, height: 30)))
    }

    /// A pixel-level gradient map (signed, near zero almost everywhere) is drawn by default as
    /// magnitude: both signs show, strong values opaquely, zero leaves the picture; the signed view
    /// (`sign: .all`) draws the negative pixel blue, and region maps keep the diverging default.
    func testPixelLevelMapsAreDrawnAsMagnitude() throws {
        let picture = try RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 100, count: 8 * 8 * 3))
        var map = [Float](repeating: 0, count: 64)
        map[9] = 2
        map[54] = -2
        map[20] = 0.02  // weak: nearly clear
        let place = Preprocessing.Placement(left: 0, top: 0, width: 8, height: 8)
        let pixel = HeatmapStyle(percentile: 100, alpha: 0.5, detail: .pixel)
        XCTAssertEqual(pixel.resolvedSign(map), .absolute)
        XCTAssertEqual(HeatmapStyle(detail: .region).resolvedSign(map), .all)
        let out = try pixel.overlay(picture, map: map, mapWidth: 8, mapHeight: 8, placement: place)
        func rgb(_ o: RGBImage, _ i: Int) -> [Int] { (0..<3).map { Int(o.pixels[i * 3 + $0]) } }
        XCTAssertEqual(rgb(out, 0), [100, 100, 100], "zero: the picture")
        XCTAssertEqual(rgb(out, 9), rgb(out, 54), "both signs alike, as magnitude")
        let strong = rgb(out, 9).map { abs($0 - 100) }.max() ?? 0, weak = rgb(out, 20).map { abs($0 - 100) }.max() ?? 0
        XCTAssertGreaterThan(strong, 60, "saturated values are opaque (2 x alpha)")
        XCTAssertLessThan(weak, strong / 3)
        let signed = try HeatmapStyle(sign: .all, percentile: 100, alpha: 0.5, detail: .pixel).overlay(picture, map: map, mapWidth: 8, mapHeight: 8, placement: place)
        XCTAssertLessThan(rgb(signed, 54)[0], rgb(signed, 54)[2], "the signed view: negative is blue")
    }

    /// Output folders are made with every missing parent; a file in the way is an error naming it.
    func testFoldersAreMadeWithTheirParents() throws {
        let base = try temporaryFolder()
        let nested = base + "/a/b/c"
        try FileSystem.createDirectory(nested)
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue)
        try FileSystem.createDirectory(nested)  // again: nothing to do
        try Data("x".utf8).write(to: URL(fileURLWithPath: base + "/a/file"))
        XCTAssertThrowsError(try FileSystem.createDirectory(base + "/a/file/d")) { error in
            XCTAssertTrue("\(error)".contains(base + "/a/file"), "\(error)")
        }
        // mkdir's own failure (a name past the file system's 255 bytes) is an error, naming it.
        let long = base + "/" + String(repeating: "x", count: 300)
        XCTAssertThrowsError(try FileSystem.createDirectory(long)) { XCTAssertTrue("\($0)".contains(long), "\($0)") }
        let results = try OutputFile(appendingTo: base + "/x/y/results.jsonl")
        try results.write(Data("{}\n".utf8))
        results.close()
        XCTAssertEqual(try String(contentsOfFile: base + "/x/y/results.jsonl", encoding: .utf8), "{}\n")
    }

    /// The folder above a path, as NSString names it, for paths NSString handles; and for the
    /// one-character relative paths it traps on (swift-corelibs-foundation), which `--out a` reached:
    /// an output folder named by one letter, relative to the working folder, is made.
    func testParentFolderAndOneLetterRelativeFolders() throws {
        for path in ["ab/c", "uv", "/u", "./u", "a//b", "a/b/", "/", "//x", "/ab/cd/ef.npy", "../x", "a/b//"] {
            XCTAssertEqual(FileSystem.parentFolder(of: path), (path as NSString).deletingLastPathComponent, path)
        }
        XCTAssertEqual(FileSystem.parentFolder(of: "a"), "")
        XCTAssertEqual(FileSystem.parentFolder(of: "a/b"), "a")
        let base = try temporaryFolder(), previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(base))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try FileSystem.createDirectory("u/v")
        let results = try OutputFile(appendingTo: "w/results.jsonl")
        results.close()
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/u/v", isDirectory: &isDirectory) && isDirectory.boolValue)
        XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/w/results.jsonl"))
    }

    func testNPYRoundTripKeepsShapeOrderAndValues() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("xai-npy-\(UUID().uuidString).npy").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        for shape: Shape in [[2, 3, 5], [7], [4, 1, 6], []] {
            var t = Tensor.uniform(shape, seed: 12)
            if shape.count > 2 { t = try Tensor(shape: shape, scalars: t.scalars.enumerated().map { $0.offset == 1 ? .nan : $0.element }) }
            try NPY.write(t, to: path)
            let back = try NPY.read(path)
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(back.scalars.map(\.bitPattern), t.scalars.map(\.bitPattern), "\(shape)")
        }
    }
}
