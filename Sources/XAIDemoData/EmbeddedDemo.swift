import Foundation
import XAICore

/// The demo set (model, sidecar, sample pictures and their object masks) built into the binary, so
/// that `xai demo` runs from any folder and from an installed copy.
public enum EmbeddedDemo {
    /// Every file, by path relative to the demo folder (`model.onnx`, `samples/circle_1.png`, ...).
    public static var files: [(path: String, data: Data)] {
        demoFiles.compactMap { entry in Data(base64Encoded: entry.base64, options: .ignoreUnknownCharacters).map { (entry.path, $0) } }
    }

    /// Writes the demo set into `folder` (created if needed) and returns it.
    public static func write(to folder: String) throws -> String {
        for (path, data) in files {
            let file = (folder as NSString).appendingPathComponent(path)
            try FileSystem.createDirectory(FileSystem.parentFolder(of: file))
            try FileSystem.write(data, to: file)
        }
        return folder
    }
}
