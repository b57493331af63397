# zpage-bench: `gnuplot clear_order_0__4_KiB_.gp` in this directory draws clear_order_0__4_KiB_.svg from clear_order_0__4_KiB_.dat
set encoding utf8
set datafile separator "\t"
set terminal svg size 1000,428 noenhanced font 'sans,13' background rgb 'white'
set output 'clear_order_0__4_KiB_.svg'
set title 'clear order 0 (4 KiB): clear (us) - lower is better' . "\n" . 'bar: median; whisker: 10th to 90th percentile' font ',15'
set border 3 lc rgb '#444444'
set tics nomirror
set xlabel 'clear (us)'
set yrange [6 - 0.4:-0.6]
set ytics scale 0
set xrange [0:0.3]
unset logscale x
set grid xtics lc rgb '#dddddd'
set style fill solid 0.9 noborder
set bmargin 6
set key at screen 0.5, character 0.6 center bottom horizontal reverse Left samplen 1.5 width 1
plot 'clear_order_0__4_KiB_.dat' using 2:1:(0):2:($1-0.35):($1+0.35):6:ytic(7) with boxxyerror lc rgb variable notitle, \
  '' using 2:1:3:4 with xerrorbars pt 7 ps 0.3 lw 1.5 lc rgb '#222222' notitle, \
  '' using 4:1:5 with labels left offset char 0.7,0 notitle, \
  keyentry with boxes fc rgb '#1f5fbf' title 'zpage', \
  keyentry with boxes fc rgb '#e07b00' title 'kernel (Linux)', \
  keyentry with boxes fc rgb '#9a9a9a' title 'baseline'
# the same as PNG, when this gnuplot has the pngcairo terminal
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 1000,428 noenhanced font 'sans,10' background rgb 'white'
    set output 'clear_order_0__4_KiB_.png'
    set title font ',11'
    replot
}
unset output
