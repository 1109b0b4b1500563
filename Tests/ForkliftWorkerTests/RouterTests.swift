import ForkliftClient
@testable import ForkliftWorker
import Testing

@Suite struct RouterTests {
    let router = Router(routes: ["/", "/hello", "/hello/admin", "/static/"])

    @Test(arguments: [
        ("/hello", 1), ("/hello/", 1), ("/hello/world", 1),
        ("/hello/admin", 2), ("/hello/admin/users", 2), ("/hello/administrators", 1),
        ("/helloworld", 0), ("/", 0), ("/other", 0),
        ("/static/", 3), ("/static/app.css", 3), ("/static", 0),
    ])
    func longestPrefixOnSegmentBoundaries(path: String, target: Int) {
        #expect(router.match(path: path) == target)
    }

    @Test func noRouteMeansNoMatch() {
        let router = Router(routes: ["/hello", "/echo"])
        #expect(router.match(path: "/") == nil)
        #expect(router.match(path: "/hell") == nil)
        #expect(router.match(path: "/echoes") == nil)
        #expect(router.match(path: "/echo/x") == 1)
    }

    @Test func equalLengthRoutesKeepTheirOwnTargets() {
        let router = Router(routes: ["/aa", "/bb"])
        #expect(router.match(path: "/aa/1") == 0)
        #expect(router.match(path: "/bb/1") == 1)
    }
}

@Suite struct RequestPathTests {
    func resolve(_ params: [String: String]) -> String {
        RequestPath.resolve { params[$0] }
    }

    @Test func documentURIWinsBecauseNginxNormalisedIt() {
        #expect(resolve(["DOCUMENT_URI": "/a/b", "SCRIPT_NAME": "/x", "REQUEST_URI": "/a/../a/b?q=1"]) == "/a/b")
    }

    @Test func scriptNamePlusPathInfoIsTheCGIWay() {
        #expect(resolve(["SCRIPT_NAME": "/app", "PATH_INFO": "/users/1", "REQUEST_URI": "/zzz"]) == "/app/users/1")
        #expect(resolve(["SCRIPT_NAME": "/hello"]) == "/hello")
    }

    @Test func requestURIWithoutItsQueryIsTheLastResort() {
        #expect(resolve(["REQUEST_URI": "/echo/x?a=1&b=2"]) == "/echo/x")
        #expect(resolve(["DOCUMENT_URI": "", "REQUEST_URI": "/e"]) == "/e")
    }

    @Test func nothingRoutesAsRoot() {
        #expect(resolve([:]) == "/")
    }
}
