# plot.gp - the shmsock benchmark's plot: throughput and latency against message size.
#
#   gnuplot -e "datafile='bench-results.dat'; outfile='bench-results.png'" bench/plot.gp
#
# bench/bench.c writes the data file (medians over the repetitions) and runs this script.
# Columns: 1 size (bytes); 2-7 streaming bytes/s of kernel, event, coalesced, zero-copy,
# busy-poll, touch-only bound; 8-12 ping-pong p50 (us) of kernel, event, coalesced, zero-copy,
# busy-poll. NaN marks a case that was not measured or failed.

if (!exists("datafile")) datafile = 'bench-results.dat'
if (!exists("outfile")) outfile = 'bench-results.png'
if (!exists("socktype")) socktype = 'stream'

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1400,560 enhanced font "sans,10"
} else {
    set terminal png size 1400,560
}
set output outfile

set datafile missing "NaN"
set logscale x 2
set xrange [40:1700000]
set xtics ("64 B" 64, "1 KiB" 1024, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576)
set grid xtics ytics mytics
set key top left

set style line 1 lc rgb "#000000" lw 2 pt 7
set style line 2 lc rgb "#1f77b4" lw 2 pt 5
set style line 3 lc rgb "#d62728" lw 2 pt 9
set style line 4 lc rgb "#2ca02c" lw 2 pt 11
set style line 5 lc rgb "#ff7f0e" lw 2 pt 13
set style line 6 lc rgb "#7f7f7f" lw 1 dt 2 pt 1

set multiplot layout 1,2 title sprintf("shmsock vs kernel AF-UNIX %s sockets, two processes (medians)", socktype)

set title "Streaming throughput (producer writes, consumer verifies every byte)"
set xlabel "message size"
set ylabel "bytes/s"
set key bottom right
set logscale y 10
set format y "10^{%L}"
plot datafile using 1:2 with linespoints ls 1 title "kernel", \
     ''       using 1:3 with linespoints ls 2 title "shm event mode", \
     ''       using 1:4 with linespoints ls 3 title "shm coalesced", \
     ''       using 1:5 with linespoints ls 4 title "shm zero-copy", \
     ''       using 1:6 with linespoints ls 5 title "shm busy-poll", \
     ''       using 1:7 with linespoints ls 6 title "touch-only bound (no transfer)"

set title "Ping-pong round trip, p50"
set key top left
set ylabel "microseconds"
set logscale y 10
set format y "%g"
plot datafile using 1:8 with linespoints ls 1 title "kernel", \
     ''       using 1:9 with linespoints ls 2 title "shm event mode", \
     ''       using 1:10 with linespoints ls 3 title "shm coalesced", \
     ''       using 1:11 with linespoints ls 4 title "shm zero-copy", \
     ''       using 1:12 with linespoints ls 5 title "shm busy-poll"

unset multiplot
