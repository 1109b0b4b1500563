import CForkliftSys
import Glibc

/// Names the frames of a worker's backtrace, in the host. A worker's images sit at the host's
/// addresses (the plugins are loaded before the fork), and the host can still open every one
/// of them, a plugin's private copy included (its descriptor stays open): so the host resolves
/// what the worker's signal handler could only capture as addresses.
struct Symbolicator {
    /// Symbols by image path, read once.
    private var tables: [String: ELFSymbols?] = [:]
    /// What to call an image: a plugin's private copy by its plugin's file.
    let imageNames: [String: String]

    init(imageNames: [String: String] = [:]) {
        self.imageNames = imageNames
    }

    /// "#3 Behaviors.handle(_:_:) + 0x1a4 (libForkliftTestBehaviors.so)", one per address.
    mutating func describe(_ addresses: [UInt], skipping: Int = 0) -> [String] {
        addresses.enumerated().dropFirst(skipping).map { index, address in
            "#\(index - skipping) " + frame(address, isReturnAddress: index > 0)
        }
    }

    private mutating func frame(_ address: UInt, isReturnAddress: Bool) -> String {
        // A return address points after its call: look up the call itself.
        let lookup = isReturnAddress && address > 0 ? address - 1 : address
        var path = [CChar](repeating: 0, count: 4096)
        var bias: UInt = 0
        guard forklift_find_image(lookup, &path, path.count, &bias) == 1 else { return "0x\(String(address, radix: 16))" }
        let imagePath = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let image = imageNames[imagePath] ?? Self.imageName(imagePath)
        if tables[imagePath] == nil { tables[imagePath] = ELFSymbols(path: imagePath) }
        guard let symbols = tables[imagePath] ?? nil, let (name, offset) = symbols.lookup(UInt64(lookup - bias)) else {
            return "0x\(String(address, radix: 16)) (\(image))"
        }
        let function = Self.demangle(name)
        // Closures' full signatures run to hundreds of characters.
        let shown = function.count > 240 ? String(function.prefix(240)) + "…" : function
        return "\(shown) + 0x\(String(offset + (isReturnAddress ? 1 : 0), radix: 16)) (\(image))"
    }

    /// A plugin's private copy by its plugin ("plugin behaviors: libX.so"), else the file name.
    static func imageName(_ path: String) -> String {
        if path.hasPrefix("/proc/self/fd/") {
            var target = [CChar](repeating: 0, count: 4096)
            let count = readlink(path, &target, target.count - 1)
            if count > 0 {
                // "/memfd:forklift:behaviors:libX.so (deleted)"
                let text = String(decoding: target.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let marker = "/memfd:forklift:"
                if text.hasPrefix(marker) {
                    let name = text.dropFirst(marker.count).split(separator: " ").first.map(String.init) ?? ""
                    let parts = name.split(separator: ":", maxSplits: 1).map(String.init)
                    return parts.count == 2 ? "plugin \(parts[0]): \(parts[1])" : "plugin \(name)"
                }
            }
        }
        return path.split(separator: "/").last.map(String.init) ?? path
    }

    static func demangle(_ name: String) -> String {
        guard name.hasPrefix("$s") || name.hasPrefix("_T") || name.hasPrefix("$S") else { return name }
        return name.withCString { mangled in
            guard let demangled = swift_demangle(mangled, strlen(mangled), nil, nil, 0) else { return name }
            defer { free(demangled) }
            return String(cString: demangled)
        }
    }
}

/// The Swift runtime's demangler (exported by libswiftCore).
@_silgen_name("swift_demangle")
func swift_demangle(_ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int, _ outputBuffer: UnsafeMutablePointer<CChar>?,
                    _ outputBufferSize: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
