# zpage-bench: `gnuplot churn_cdf.gp` in this directory draws churn_cdf.svg from churn_cdf.dat
set encoding utf8
set datafile separator "\t"
set terminal svg size 1000,520 noenhanced font 'sans,13' background rgb 'white'
set output 'churn_cdf.svg'
set title 'churn: latency per call, cumulative - further left is better' . "\n" . 'fraction of calls that took at most x; log x axis' font ',15'
set border 3 lc rgb '#444444'
set tics nomirror
set xlabel 'latency (ns, log scale)'
set ylabel 'fraction of calls'
set logscale x
set format x '%.0f'
set yrange [0:1]
set ytics 0.1
set key outside right top vertical spacing 1.3
set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 3 lc rgb '#777777'
set label 'p50' at graph 0.01, first 0.5 offset 0,-0.6 tc rgb '#555555'
set arrow from graph 0, first 0.99 to graph 1, first 0.99 nohead dt 3 lc rgb '#777777'
set label 'p99' at graph 0.01, first 0.99 offset 0,-0.6 tc rgb '#555555'
set grid lc rgb '#dddddd'
plot 'churn_cdf.dat' index 0 using 1:2 with lines lw 2 dt 1 lc rgb '#1f5fbf' title 'zpage, 1 thread', \
  'churn_cdf.dat' index 1 using 1:2 with lines lw 2 dt 1 lc rgb '#2a9d8f' title 'glibc, 1 thread', \
  'churn_cdf.dat' index 2 using 1:2 with lines lw 2 dt 1 lc rgb '#c0392b' title 'jemalloc, 1 thread', \
  'churn_cdf.dat' index 3 using 1:2 with lines lw 2 dt 1 lc rgb '#8e44ad' title 'mimalloc, 1 thread', \
  'churn_cdf.dat' index 4 using 1:2 with lines lw 2 dt 1 lc rgb '#b8860b' title 'tcmalloc, 1 thread', \
  'churn_cdf.dat' index 5 using 1:2 with lines lw 2 dt 2 lc rgb '#1f5fbf' title 'zpage, 2 threads', \
  'churn_cdf.dat' index 6 using 1:2 with lines lw 2 dt 2 lc rgb '#2a9d8f' title 'glibc, 2 threads', \
  'churn_cdf.dat' index 7 using 1:2 with lines lw 2 dt 2 lc rgb '#c0392b' title 'jemalloc, 2 threads', \
  'churn_cdf.dat' index 8 using 1:2 with lines lw 2 dt 2 lc rgb '#8e44ad' title 'mimalloc, 2 threads', \
  'churn_cdf.dat' index 9 using 1:2 with lines lw 2 dt 2 lc rgb '#b8860b' title 'tcmalloc, 2 threads'
# the same as PNG, when this gnuplot has the pngcairo terminal
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 1000,520 noenhanced font 'sans,10' background rgb 'white'
    set output 'churn_cdf.png'
    set title font ',11'
    replot
}
unset output
