"""The datasets: image datasets (Fashion-MNIST, CIFAR-10, and any registered reader) in
:mod:`lbw_utils.data.images`, the name -> nationality task in :mod:`lbw_utils.data.names`."""
