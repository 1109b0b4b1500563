#!/usr/bin/perl
# The Perl peer: FCGI with FCGI::ProcManager (n_processes as Forklift's workers), run by
# benchmarks/peers.py as `perl hello.pl SOCKET WORKERS`. The benchmark's cases, answered as
# Forklift's plugins and benchmarks/peers/hello.c answer them:
#   /hello             "Hello, world!\n"
#   /echo...           Plugins/Echo's format: method, path, pid, every param, body-length, the body
#   .../sleep?ms=N     one sleep of N ms, then "slept M ms\n", 64 KiB of 'z' and "\nend\n"
use strict;
use warnings;
use FCGI;
use FCGI::ProcManager;
use Time::HiRes qw(usleep clock_gettime CLOCK_MONOTONIC);

my ($socket_path, $workers) = @ARGV;
die "usage: hello.pl SOCKET WORKERS\n" unless $socket_path && $workers;
my $socket = FCGI::OpenSocket($socket_path, 511) or die "cannot listen on $socket_path: $!\n";
chmod 0666, $socket_path;
my %env;
my $request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%env, $socket);
my $manager = FCGI::ProcManager->new({ n_processes => $workers });
$manager->pm_manage();
my $tail = ('z' x 65536) . "\nend\n";
while ($request->Accept() >= 0) {
    $manager->pm_pre_dispatch();
    my $path = $env{DOCUMENT_URI} // '';
    if ($path eq '') {
        $path = ($env{SCRIPT_NAME} // '') ne '' ? $env{SCRIPT_NAME} . ($env{PATH_INFO} // '') : (split /\?/, $env{REQUEST_URI} // '')[0] // '';
    }
    my $head = "Content-Type: text/plain; charset=utf-8\r\n\r\n";
    if ($path eq '/hello' || index($path, '/hello/') == 0) {
        print $head, "Hello, world!\n";
    } elsif ($path eq '/echo' || index($path, '/echo/') == 0) {
        my ($body, $chunk) = ('', '');
        while (read(STDIN, $chunk, 65536)) { $body .= $chunk; }
        my $text = "method: " . ($env{REQUEST_METHOD} // '') . "\npath: $path\npid: $$\n";
        $text .= "param: $_=$env{$_}\n" for sort keys %env;
        print $head, $text, "body-length: ", length($body), "\n\n", $body;
    } elsif ($path =~ m{(?:^|/)sleep$}) {
        my ($ms) = ($env{QUERY_STRING} // '') =~ /=(\d+)$/;
        my $start = clock_gettime(CLOCK_MONOTONIC);
        usleep(($ms // 0) * 1000);
        my $slept = int((clock_gettime(CLOCK_MONOTONIC) - $start) * 1000);
        print $head, "slept $slept ms\n", $tail;
    } else {
        print "Status: 404\r\n", $head, "no route for $path\n";
    }
    $manager->pm_post_dispatch();
}
FCGI::CloseSocket($socket);
