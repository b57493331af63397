# zpage-bench: `gnuplot rss_series.gp` in this directory draws rss_series.svg from rss_series.dat
set encoding utf8
set datafile separator "\t"
set terminal svg size 1000,520 noenhanced font 'sans,13' background rgb 'white'
set output 'rss_series.svg'
set title 'rss: resident memory (MiB, VmRSS) - lower is better' . "\n" . 'against time (s); a point per sample, a line per configuration' font ',15'
set border 3 lc rgb '#444444'
set tics nomirror
set xlabel 'time (s)'
set ylabel 'resident memory (MiB, VmRSS)'
set yrange [0:564.884375]
set bmargin 6
set key at screen 0.5, character 0.6 center bottom horizontal reverse Left samplen 1.5 width 1
set grid lc rgb '#dddddd'
plot 'rss_series.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 lw 2 dt 1 lc rgb '#1f5fbf' title 'ZP_REPORT (delay 1 s)', \
  'rss_series.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 lw 2 dt 2 lc rgb '#9a9a9a' title 'no reporting'
# the same as PNG, when this gnuplot has the pngcairo terminal
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 1000,520 noenhanced font 'sans,10' background rgb 'white'
    set output 'rss_series.png'
    set title font ',11'
    replot
}
unset output
