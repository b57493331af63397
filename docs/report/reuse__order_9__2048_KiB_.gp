# zpage-bench: `gnuplot reuse__order_9__2048_KiB_.gp` in this directory draws reuse__order_9__2048_KiB_.svg from reuse__order_9__2048_KiB_.dat
set encoding utf8
set datafile separator "\t"
set terminal svg size 1000,428 noenhanced font 'sans,13' background rgb 'white'
set output 'reuse__order_9__2048_KiB_.svg'
set title 'reuse, order 9 (2048 KiB): zeroing alloc + writes (us) - lower is better' . "\n" . 'bar: median; whisker: 10th to 90th percentile' font ',15'
set border 3 lc rgb '#444444'
set tics nomirror
set xlabel 'zeroing alloc + writes (us)'
set yrange [6 - 0.4:-0.6]
set ytics scale 0
set xrange [0:1081.90125]
unset logscale x
set grid xtics lc rgb '#dddddd'
set style fill solid 0.9 noborder
set bmargin 6
set key at screen 0.5, character 0.6 center bottom horizontal reverse Left samplen 1.5 width 1
plot 'reuse__order_9__2048_KiB_.dat' using 2:1:(0):2:($1-0.35):($1+0.35):6:ytic(7) with boxxyerror lc rgb variable notitle, \
  '' using 2:1:3:4 with xerrorbars pt 7 ps 0.3 lw 1.5 lc rgb '#222222' notitle, \
  '' using 4:1:5 with labels left offset char 0.7,0 notitle, \
  keyentry with boxes fc rgb '#1f5fbf' title 'zpage', \
  keyentry with boxes fc rgb '#2a9d8f' title 'other allocators'
# the same as PNG, when this gnuplot has the pngcairo terminal
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 1000,428 noenhanced font 'sans,10' background rgb 'white'
    set output 'reuse__order_9__2048_KiB_.png'
    set title font ',11'
    replot
}
unset output
